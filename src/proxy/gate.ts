/**
 * listener -> canonical request -> decision: the single function every request passes through,
 * on the normal, upgrade and hijack paths alike.
 */
import type { Decision, Policy } from "../policy/policy.js";
import { type CanonicalTarget, canonicalTarget } from "../routing/canonical.js";
import { matchRoute, type RouteIndex, type RouteMatch } from "../routing/match.js";
import { printableTarget } from "./respond.js";

export type GateResult =
  | {
      readonly verdict: "allow";
      readonly target: CanonicalTarget;
      readonly match: RouteMatch;
      readonly decision: Decision;
    }
  | {
      readonly verdict: "deny";
      readonly status: number;
      readonly message: string;
      /** Reason code for logs and metrics. */
      readonly reason: "bad-target" | "no-route" | "policy";
      readonly operation: string | null;
      readonly decision?: Decision;
    };

export interface Gate {
  check(method: string, rawTarget: string): GateResult;
}

export function createGate(index: RouteIndex, policy: Policy): Gate {
  return {
    check(method, rawTarget) {
      const target = canonicalTarget(rawTarget);
      if (!target.ok) {
        return {
          verdict: "deny",
          status: 400,
          reason: "bad-target",
          operation: null,
          message: `portcullis refused ${method} ${printableTarget(rawTarget)}: ${target.reason}`,
        };
      }
      const match = matchRoute(index, method, target.routePath);
      if (match === null) {
        return {
          verdict: "deny",
          status: 404,
          reason: "no-route",
          operation: null,
          message: `page not found: ${method} ${printableTarget(target.path)} is not a Docker Engine API route (portcullis)`,
        };
      }
      const decision = policy.decide({ method, rawTarget, match });
      if (decision.allow) return { verdict: "allow", target, match, decision };
      return {
        verdict: "deny",
        status: 403,
        reason: "policy",
        operation: match.route.operation,
        decision,
        message:
          `portcullis denied ${match.route.operation} (${method} ${printableTarget(target.path)})` +
          (decision.hint ? `: ${decision.hint}` : ""),
      };
    },
  };
}
