/**
 * The audit log: one JSON record per decision through pino. On stdout, denials and audited requests
 * at warn, allowed ones at debug; in the optional audit file (PORTCULLIS_AUDIT_LOG), every decision
 * at info. Credentials never get here: records carry no headers and no bodies, and every string is
 * JSON-escaped by pino (a CR/LF in a target cannot start a new record).
 */
import { type DestinationStream, pino } from "pino";
import type { Logger } from "./logger.js";
import type { DecisionRecord, Observer } from "./observer.js";

/** The fields of an audit record (docs/observability.md). Only these: no headers, no bodies. */
export function auditFields(r: DecisionRecord): Record<string, unknown> {
  return {
    listener: r.listener,
    peer: r.peer,
    client: r.client,
    profile: r.profile,
    mode: r.mode,
    policy: r.policyVersion,
    method: r.method,
    target: r.target,
    operation: r.operation,
    decision: r.decision,
    rule: r.rule,
    reason: r.reason,
    status: r.status,
    ms: r.durationMs,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    ...(r.tunnelled !== undefined ? { tunnelled: r.tunnelled } : {}),
    ...(r.error !== undefined ? { error: r.error } : {}),
    ...(r.decision === "audit" ? { audit: "would deny" } : {}),
  };
}

function auditMessage(r: DecisionRecord): string {
  if (r.decision === "deny") return r.message ?? `denied ${r.method} ${r.target}`;
  if (r.decision === "audit") return `audit: profile ${r.profile} would deny ${r.operation}`;
  return "request";
}

export function auditLog(logger: Logger): Observer {
  return {
    decision(r: DecisionRecord) {
      const level = r.decision === "allow" ? "debug" : "warn";
      if (!logger.isLevelEnabled(level)) return;
      logger[level](auditFields(r), auditMessage(r));
    },
  };
}

export interface AuditFile extends Observer {
  readonly path: string;
  /** Reopens the file at its path (after logrotate moved it away): SIGUSR1. */
  reopen(): void;
  /** Flushes and closes the file. */
  close(): void;
}

/**
 * Every decision, allowed ones included, at info, appended to `path` (created with its folders).
 * Writes are synchronous: a record is on disk when the exchange is over.
 */
export function auditFile(path: string): AuditFile {
  const destination = pino.destination({ dest: path, sync: true, mkdir: true, append: true });
  const logger = pino(
    {
      level: "info",
      base: { name: "portcullis" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination as DestinationStream,
  );
  let closed = false;
  return {
    path,
    decision(r: DecisionRecord) {
      if (closed) return;
      logger.info(auditFields(r), auditMessage(r));
    },
    reopen() {
      if (!closed) destination.reopen();
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        destination.flushSync();
      } catch {
        /* nothing buffered */
      }
      destination.end();
    },
  };
}
