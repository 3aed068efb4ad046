/** `portcullis serve`: builds everything from the config once, starts the listeners, handles signals and reloads. */
import { describeListener, type ProxyConfig } from "../config/config.js";
import { type Env, readPolicyFile } from "../config/env.js";
import { watchFile } from "../config/watch.js";
import { auditLog } from "../observe/audit-log.js";
import { createLogger, type Logger } from "../observe/logger.js";
import { startObservability } from "../observe/observability.js";
import { combineObservers } from "../observe/observer.js";
import { envPolicy } from "../policy/env-policy.js";
import { filePolicy } from "../policy/file-policy.js";
import type { Policy } from "../policy/policy.js";
import { ALL_TOGGLE_NAMES } from "../policy/toggles.js";
import { createGate, type PolicyHolder } from "../proxy/gate.js";
import { type RunningProxy, startProxy } from "../proxy/server.js";
import { createUpstream } from "../proxy/upstream.js";
import { buildRouteIndex } from "../routing/match.js";
import { ROUTES } from "../routing/route-table.generated.js";

export interface Serving extends RunningProxy {
  /** Re-reads the policy file; an invalid one keeps the running policy. Resolves true when swapped. */
  reload(): boolean;
  readonly policy: () => Policy;
  /** Reopens the audit file at its path (SIGUSR1, after log rotation). */
  reopenLogs(): void;
  /** `admin=tcp://...` when PORTCULLIS_ADMIN_LISTEN is set. */
  readonly adminAddress: string | undefined;
}

export function policyFor(config: ProxyConfig, env: Env): Policy {
  return config.policyFile ? filePolicy(config.policyFile, ROUTES, env) : envPolicy(ROUTES, config.toggles);
}

export async function serve(
  config: ProxyConfig,
  logger: Logger = createLogger(config.logLevel),
  env: Env = process.env,
): Promise<Serving> {
  const holder: PolicyHolder = { current: policyFor(config, env) };
  const gate = createGate(buildRouteIndex(ROUTES), holder);
  const upstream = createUpstream(config.upstream);
  const observability = await startObservability({ config, logger, upstream, policy: () => holder.current });
  const proxy = await startProxy({
    config,
    gate,
    upstream,
    logger,
    observer: combineObservers([auditLog(logger), observability.observer]),
  }).catch(async (error: unknown) => {
    await observability.closeAdmin();
    await observability.close();
    throw error;
  });
  const policy = holder.current;
  logger.info(
    {
      listeners: proxy.addresses,
      upstream: upstream.description,
      allow: policy.summary,
      source: policy.origin,
      policy: policy.version,
    },
    `portcullis listening on ${proxy.addresses.join(", ")} -> ${upstream.description}; ${
      config.policyFile ? `policy ${policy.origin} (${policy.version}): ` : "allowed: "
    }${policy.summary.length > 0 ? policy.summary.join(" ") : "nothing"}`,
  );
  if (config.policyFile) {
    const ignored = ALL_TOGGLE_NAMES.filter((t) => (env[t] ?? "").trim() !== "");
    if (ignored.length > 0) {
      logger.warn(
        { ignored },
        `the policy file decides: environment toggles ${ignored.join(", ")} are ignored`,
      );
    }
  }
  const reload = (): boolean => {
    const path = config.policyFile?.path;
    if (path === undefined) return false;
    try {
      const loaded = readPolicyFile({}, { config: path });
      if (loaded === undefined) return false;
      const next = filePolicy(loaded, ROUTES, env);
      if (JSON.stringify(loaded.data.listeners) !== JSON.stringify(config.policyFile?.data.listeners)) {
        logger.warn("listener changes in the policy file take effect at the next restart");
      }
      if (next.version === holder.current.version) {
        // The same file, but token files were just re-read: a rotated token takes effect (SIGHUP).
        holder.current = next;
        return false;
      }
      const previous = holder.current.version;
      holder.current = next;
      observability.reloaded(true, next);
      logger.info(
        { policy: next.version, previous },
        `policy reloaded from ${path}: version ${next.version}`,
      );
      return true;
    } catch (error) {
      observability.reloaded(false, holder.current);
      logger.error(
        { policy: holder.current.version },
        `policy reload failed, keeping version ${holder.current.version}: ${(error as Error).message}`,
      );
      return false;
    }
  };
  const unwatch = config.policyFile ? watchFile(config.policyFile.path, reload) : () => {};
  return {
    ...proxy,
    reload,
    policy: () => holder.current,
    reopenLogs: () => observability.reopen(),
    adminAddress: observability.adminAddress,
    close: async (graceMs?: number) => {
      unwatch();
      await observability.closeAdmin();
      await proxy.close(graceMs);
      await observability.close();
    },
  };
}

/** Runs until SIGTERM/SIGINT, then closes within the configured grace period; SIGHUP reloads the policy. */
export async function serveUntilSignalled(config: ProxyConfig): Promise<void> {
  const logger = createLogger(config.logLevel);
  // SIGUSR1 reopens the audit file; listening for it also keeps Node from opening its inspector.
  let reopen = () => {};
  process.on("SIGUSR1", () => reopen());
  let proxy: Serving;
  try {
    proxy = await serve(config, logger);
  } catch (error) {
    const listeners = config.listeners.map(describeListener).join(", ");
    logger.fatal({ err: error }, `portcullis could not start on ${listeners}: ${(error as Error).message}`);
    logger.flush();
    process.exitCode = 1;
    return;
  }
  process.on("SIGHUP", () => proxy.reload());
  reopen = () => {
    proxy.reopenLogs();
    logger.info({ auditLog: config.auditLogFile ?? null }, "SIGUSR1: audit log reopened");
  };
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: no new connections, open streams get the grace period");
    // Hard stop: whatever still holds the process goes after grace + 400 ms.
    setTimeout(() => process.exit(0), config.shutdownGraceMs + 400).unref();
    proxy.close().then(() => {
      logger.info("stopped");
      logger.flush();
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
