/**
 * The audit log: one JSON record per decision through pino. Denials and audited requests at warn,
 * allowed ones at debug. Credentials never get here: records carry no headers and no bodies.
 */
import type { Logger } from "./logger.js";
import type { DecisionRecord, Observer } from "./observer.js";

export function auditLog(logger: Logger): Observer {
  return {
    decision(r: DecisionRecord) {
      const level = r.decision === "allow" ? "debug" : "warn";
      if (!logger.isLevelEnabled(level)) return;
      const record = {
        listener: r.listener,
        peer: r.peer,
        client: r.client,
        profile: r.profile,
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
      };
      if (r.decision === "deny") logger.warn(record, r.message ?? `denied ${r.method} ${r.target}`);
      else if (r.decision === "audit")
        logger.warn(
          { ...record, audit: "would deny" },
          `audit: profile ${r.profile} would deny ${r.operation}`,
        );
      else logger.debug(record, "request");
    },
  };
}
