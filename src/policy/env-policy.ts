/**
 * The anchor-compatible policy built from environment toggles: one profile for every client. Each
 * operation's decision is computed once at start; the hot path is one map lookup.
 */
import { createHash } from "node:crypto";
import type { RouteDef } from "../routing/route-def.js";
import type { Decision, Policy, Profile, RoutedRequest } from "./policy.js";
import { isRead, WRITING_GETS } from "./risk.js";
import { ACTION_TOGGLES, POST_TOGGLE, SECTION_TOGGLES } from "./toggles.js";

/** Toggle name -> on/off, after defaults were applied. */
export type ToggleValues = Readonly<Record<string, boolean>>;

export function decideByToggles(route: RouteDef, toggles: ToggleValues): Decision {
  for (const action of ACTION_TOGGLES) {
    if (toggles[action.name] && action.operations.includes(route.operation)) {
      return { allow: true, rule: `${action.name}=1` };
    }
  }
  const section = SECTION_TOGGLES.find((t) => t.section === route.section);
  if (section === undefined) {
    return {
      allow: false,
      rule: "default deny",
      hint: "no environment toggle allows it; grant it by operation name in a policy file",
    };
  }
  const read = isRead(route);
  const sectionOn = toggles[section.name] === true;
  const postOn = toggles[POST_TOGGLE] === true;
  if (sectionOn && (read || postOn)) {
    return { allow: true, rule: read ? `${section.name}=1` : `${section.name}=1 ${POST_TOGGLE}=1` };
  }
  const needs = read ? `${section.name}=1` : `${section.name}=1 and ${POST_TOGGLE}=1`;
  const actions = ACTION_TOGGLES.filter((a) => a.operations.includes(route.operation)).map(
    (a) => `${a.name}=1`,
  );
  const why = WRITING_GETS.has(route.operation) ? " (it writes to the container's stdin)" : "";
  return {
    allow: false,
    rule: "default deny",
    hint: `set ${needs}${actions.length > 0 ? ` (or ${actions.join(" or ")})` : ""} to allow it${why}`,
  };
}

export function envPolicy(routes: readonly RouteDef[], toggles: ToggleValues): Policy {
  const byOperation = new Map<string, Decision>();
  for (const route of routes) byOperation.set(route.operation, decideByToggles(route, toggles));
  const denyUnknown: Decision = { allow: false, rule: "default deny", hint: "unknown operation" };
  const summary: string[] = [];
  for (const t of SECTION_TOGGLES) {
    if (toggles[t.name]) summary.push(toggles[POST_TOGGLE] ? `${t.name}(read,write)` : `${t.name}(read)`);
  }
  for (const a of ACTION_TOGGLES) if (toggles[a.name]) summary.push(`${a.name}(${a.operations.join(",")})`);
  const profile: Profile = {
    name: "env",
    mode: "enforce",
    decide(request: RoutedRequest): Decision {
      return byOperation.get(request.match.route.operation) ?? denyUnknown;
    },
  };
  const resolved = { client: "anonymous", profile };
  const on = Object.entries(toggles)
    .filter(([, v]) => v)
    .map(([k]) => k)
    .sort();
  return {
    version: createHash("sha256").update(on.join(",")).digest("hex").slice(0, 12),
    origin: "environment toggles",
    summary,
    resolveClient: () => resolved,
    clientNamed: (name) => (name === "anonymous" ? resolved : undefined),
  };
}
