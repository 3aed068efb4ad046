/**
 * listener -> canonical request -> decision: the single function every request passes through,
 * on the normal, upgrade and hijack paths alike.
 */
import type { ClientContext, Decision, Policy, Profile, ProfileMode } from "../policy/policy.js";
import { type CanonicalTarget, canonicalTarget } from "../routing/canonical.js";
import { matchRoute, type RouteIndex, type RouteMatch } from "../routing/match.js";
import { printableTarget } from "./respond.js";

/** Who asked and under which policy version; logged with every decision. */
export interface Attribution {
  readonly client: string;
  readonly profile: string;
  readonly mode: ProfileMode;
  readonly policyVersion: string;
}

export type GateResult =
  | ({
      readonly verdict: "allow";
      /** The profile that allowed it: its body and view rules still apply while forwarding. */
      readonly profileRules: Profile;
      readonly target: CanonicalTarget;
      readonly match: RouteMatch;
      readonly decision: Decision;
    } & Attribution)
  | ({
      readonly verdict: "deny";
      readonly status: number;
      readonly message: string;
      /** Reason code for logs and metrics. */
      readonly reason: "bad-target" | "no-route" | "policy" | "undecidable" | "body";
      readonly operation: string | null;
      readonly decision?: Decision;
    } & Attribution);

export interface Gate {
  check(method: string, rawTarget: string, client: ClientContext, contentType?: string): GateResult;
}

/** The policy in force; replaced as a whole on reload, read once per request. */
export interface PolicyHolder {
  current: Policy;
}

export function createGate(index: RouteIndex, holder: PolicyHolder): Gate {
  return {
    check(method, rawTarget, client, contentType) {
      const policy = holder.current;
      const { client: name, profile } = policy.resolveClient(client);
      const who: Attribution = {
        client: name,
        profile: profile.name,
        mode: profile.mode,
        policyVersion: policy.version,
      };
      const target = canonicalTarget(rawTarget);
      if (!target.ok) {
        return {
          verdict: "deny",
          status: 400,
          reason: "bad-target",
          operation: null,
          message: `portcullis refused ${method} ${printableTarget(rawTarget)}: ${target.reason}`,
          ...who,
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
          ...who,
        };
      }
      const decision = profile.decide({ method, rawTarget, match, contentType });
      const operation = match.route.operation;
      const shown = `${operation} (${method} ${printableTarget(target.path)})`;
      if (decision.refuse !== undefined) {
        return {
          verdict: "deny",
          status: 400,
          reason: "undecidable",
          operation,
          decision,
          message: `portcullis refused ${shown}: ${decision.refuse}`,
          ...who,
        };
      }
      if (decision.allow) return { verdict: "allow", profileRules: profile, target, match, decision, ...who };
      return {
        verdict: "deny",
        status: 403,
        reason: "policy",
        operation,
        decision,
        message: `portcullis denied ${shown}${decision.hint ? `: ${decision.hint}` : ""}`,
        ...who,
      };
    },
  };
}
