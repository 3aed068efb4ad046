/**
 * A profile's rules, compiled: for each operation, the rules that name it, in file order. The first
 * rule whose conditions hold decides; nothing matching means deny.
 */
import type { RouteDef } from "../routing/route-def.js";
import { type Conditions, evaluateConditions } from "./conditions.js";
import type {
  BodyInspector,
  Decision,
  Profile,
  ProfileMode,
  RoutedRequest,
  RuleSource,
  ViewFilter,
} from "./policy.js";
import { resolveSelector } from "./selectors.js";

export interface RuleSpec {
  readonly effect: "allow" | "deny";
  readonly selectors: readonly string[];
  readonly when?: Conditions;
  readonly source: RuleSource;
}

export interface ProfileSpec {
  readonly name: string;
  readonly mode: ProfileMode;
  readonly rules: readonly RuleSpec[];
  readonly body?: BodyInspector;
  readonly view?: ViewFilter;
}

export function ruleText(rule: Pick<RuleSpec, "effect" | "selectors" | "when">): string {
  const sel = rule.selectors.length === 1 ? (rule.selectors[0] as string) : `[${rule.selectors.join(", ")}]`;
  return `${rule.effect}: ${sel}${rule.when ? " (when ...)" : ""}`;
}

export function where(source: RuleSource): string {
  return `${source.file}:${source.line}`;
}

export function compileProfile(spec: ProfileSpec, routes: readonly RouteDef[]): Profile {
  const candidates = new Map<string, RuleSpec[]>();
  for (const rule of spec.rules) {
    for (const selector of rule.selectors) {
      const resolved = resolveSelector(selector, routes);
      if (!resolved.ok) throw new Error(`${where(rule.source)}: ${resolved.error}`);
      for (const op of resolved.operations) {
        const list = candidates.get(op) ?? [];
        if (!list.includes(rule)) list.push(rule);
        candidates.set(op, list);
      }
    }
  }
  const audit = spec.mode !== "enforce";
  const outcome = (allow: boolean, rule: string, source?: RuleSource, hint?: string): Decision => {
    if (!allow && audit) return { allow: true, audited: true, rule, ...(source ? { source } : {}) };
    return { allow, rule, ...(source ? { source } : {}), ...(hint ? { hint } : {}) };
  };
  return {
    name: spec.name,
    mode: spec.mode,
    ...(spec.body ? { body: spec.body } : {}),
    ...(spec.view ? { view: spec.view } : {}),
    decide(request: RoutedRequest): Decision {
      const op = request.match.route.operation;
      for (const rule of candidates.get(op) ?? []) {
        if (rule.when !== undefined) {
          const result = evaluateConditions(rule.when, request);
          if (result === "no-match") continue;
          if (result !== "match")
            return { allow: false, rule: ruleText(rule), source: rule.source, refuse: result.refuse };
        }
        const text = ruleText(rule);
        return outcome(
          rule.effect === "allow",
          text,
          rule.source,
          `profile ${spec.name}, rule "${text}" at ${where(rule.source)}`,
        );
      }
      return outcome(
        false,
        "default deny",
        undefined,
        `profile ${spec.name} has no rule allowing it (add "- allow: ${op}")`,
      );
    },
  };
}
