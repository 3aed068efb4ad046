/**
 * Everything serve() adds besides the stdout audit log, built from the config: the audit file,
 * the learn observer, and (with an admin listener) metrics, the live view, /health and /ready.
 */
import type { ProxyConfig } from "../config/config.js";
import type { Policy } from "../policy/policy.js";
import type { Upstream } from "../proxy/upstream.js";
// Loaded only when configured (dynamic imports below): prom-client, the live view and the learn
// observer's yaml stay out of a plain proxy's memory (idle RSS, docs/benchmarks.md).
import type { AdminServer } from "./admin.js";
import { type AuditFile, auditFile } from "./audit-log.js";
import type { LearnObserver } from "./learn.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";
import { combineObservers, type Observer } from "./observer.js";

export interface Observability {
  readonly observer: Observer;
  /** `admin=tcp://...` when an admin listener is running. */
  readonly adminAddress: string | undefined;
  /** A reload attempt; `policy` is the policy in force afterwards. */
  reloaded(ok: boolean, policy: Policy): void;
  /** SIGUSR1: reopen the audit file at its path. */
  reopen(): void;
  /** Stops the admin listener (first: live views are long-lived connections). */
  closeAdmin(): Promise<void>;
  /** After the proxy closed: the learned policy's last write, the audit file's flush. */
  close(): Promise<void>;
}

export async function startObservability(options: {
  readonly config: ProxyConfig;
  readonly logger: Logger;
  readonly upstream: Upstream;
  readonly policy: () => Policy;
  /** Tests: how long the learn observer waits before writing. */
  readonly learnDebounceMs?: number;
}): Promise<Observability> {
  const { config, logger, upstream, policy } = options;
  const observers: Observer[] = [];
  let audit: AuditFile | undefined;
  let learn: LearnObserver | undefined;
  let metrics: Metrics | undefined;
  let admin: AdminServer | undefined;
  try {
    if (config.auditLogFile !== undefined) {
      audit = auditFile(config.auditLogFile);
      observers.push(audit);
    }
    if (config.learnOutput !== undefined) {
      const { learnObserver } = await import("./learn.js");
      learn = learnObserver({
        output: config.learnOutput,
        policyFile: config.policyFile,
        logger,
        ...(options.learnDebounceMs !== undefined ? { debounceMs: options.learnDebounceMs } : {}),
      });
      observers.push(learn);
      const learning = Object.entries(config.policyFile?.data.profiles ?? {})
        .filter(([, p]) => p.mode === "learn")
        .map(([name]) => name);
      if (learning.length === 0) {
        logger.warn(
          { output: config.learnOutput },
          "learn output is set but no profile has mode: learn; nothing will be recorded",
        );
      }
    }
    if (config.adminListener !== undefined) {
      const [{ startAdmin }, { createLiveView }, { createMetrics }] = await Promise.all([
        import("./admin.js"),
        import("./live.js"),
        import("./metrics.js"),
      ]);
      metrics = createMetrics();
      const live = createLiveView(policy);
      observers.push(metrics, live);
      admin = await startAdmin({ spec: config.adminListener, upstream, metrics, live, logger });
      metrics.policyLoaded(policy().version, policy().origin);
    }
  } catch (error) {
    audit?.close();
    throw error;
  }
  return {
    observer: combineObservers(observers),
    adminAddress: admin?.address,
    reloaded(ok, p) {
      metrics?.reloaded(ok);
      if (ok) metrics?.policyLoaded(p.version, p.origin);
    },
    reopen() {
      audit?.reopen();
    },
    async closeAdmin() {
      await admin?.close();
    },
    async close() {
      // Streams the proxy just closed report their decisions from promise callbacks: let them land.
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 20));
      learn?.close();
      audit?.close();
    },
  };
}
