/**
 * Prometheus metrics (prom-client), served on the admin listener's /metrics. Label values come from
 * the route table (operations), the policy file (clients) and fixed sets (decisions, kinds), never
 * from request targets, so the series count stays bounded.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { DecisionRecord, Observer } from "./observer.js";

export interface Metrics extends Observer {
  readonly registry: Registry;
  /** The policy now in force (at start and after each successful reload). */
  policyLoaded(version: string, origin: string): void;
  /** A reload attempt: `ok` false when the new file was invalid and the old policy kept running. */
  reloaded(ok: boolean): void;
  /** The `/ready` probe's outcome, for the `portcullis_daemon_up` gauge. */
  daemonUp(up: boolean): void;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: "portcullis_requests_total",
    help: "Requests decided, by operation (route table name; 'none' when no route matched), decision (allow, deny, audit) and client",
    labelNames: ["operation", "decision", "client"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "portcullis_request_duration_seconds",
    help: "Time from request to end of exchange (streams and tunnels: until they close), by decision",
    labelNames: ["decision"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 600],
    registers,
  });
  const bytes = new Counter({
    name: "portcullis_client_bytes_total",
    help: "Bytes read from (in) and written to (out) client connections, by direction",
    labelNames: ["direction"] as const,
    registers,
  });
  const open = new Gauge({
    name: "portcullis_open_streams",
    help: "Exchanges open now: kind=stream (events, logs -f, wait, pulls) or kind=tunnel (attach, exec)",
    labelNames: ["kind"] as const,
    registers,
  });
  open.set({ kind: "stream" }, 0);
  open.set({ kind: "tunnel" }, 0);
  const upstreamErrors = new Counter({
    name: "portcullis_upstream_errors_total",
    help: "Requests answered 502 because the daemon could not be reached",
    registers,
  });
  upstreamErrors.inc(0);
  const reloads = new Counter({
    name: "portcullis_policy_reloads_total",
    help: "Policy file reload attempts, by result (success, failure: the old policy kept running)",
    labelNames: ["result"] as const,
    registers,
  });
  reloads.inc({ result: "success" }, 0);
  reloads.inc({ result: "failure" }, 0);
  const policy = new Gauge({
    name: "portcullis_policy_info",
    help: "1 for the policy in force, labelled with its version (content hash) and origin",
    labelNames: ["version", "origin"] as const,
    registers,
  });
  const loadedAt = new Gauge({
    name: "portcullis_policy_loaded_timestamp_seconds",
    help: "When the policy in force was loaded (Unix time)",
    registers,
  });
  const daemon = new Gauge({
    name: "portcullis_daemon_up",
    help: "1 when the last /ready probe got 200 from the daemon's /_ping, 0 when it did not",
    registers,
  });
  return {
    registry,
    decision(r: DecisionRecord) {
      requests.inc({ operation: r.operation ?? "none", decision: r.decision, client: r.client });
      duration.observe({ decision: r.decision }, r.durationMs / 1000);
      bytes.inc({ direction: "in" }, r.bytesIn);
      bytes.inc({ direction: "out" }, r.bytesOut);
    },
    streamOpened: (kind) => open.inc({ kind }),
    streamClosed: (kind) => open.dec({ kind }),
    upstreamError: () => upstreamErrors.inc(),
    policyLoaded(version, origin) {
      policy.reset();
      policy.set({ version, origin }, 1);
      loadedAt.set(Date.now() / 1000);
    },
    reloaded(ok) {
      reloads.inc({ result: ok ? "success" : "failure" });
    },
    daemonUp(up) {
      daemon.set(up ? 1 : 0);
    },
  };
}
