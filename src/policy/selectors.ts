/**
 * The rule vocabulary: a selector names a set of operations, always resolved against the route
 * table (never against raw paths), so a rule can only mean what dockerd will run.
 *
 *   ContainerList                 one operation (its operationId)
 *   containers:read               a section's reads, without the exfiltrate class unless named
 *   containers:write, containers:*, *:read
 *   exfiltrate | hijack | write | admin      a built-in risk class
 *   GET /containers/{id}/logs     method and path pattern ({param} = one route variable,
 *                                 * = one segment, trailing ** = the rest; method may be *)
 */
import type { RouteDef } from "../routing/route-def.js";
import { didYouMean } from "./did-you-mean.js";
import { isRead, RISK_CLASSES, type RiskClass, riskClasses } from "./risk.js";

export type SelectorResult = { ok: true; operations: ReadonlySet<string> } | { ok: false; error: string };

const ACCESS = ["read", "write", "*"] as const;
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "*"]);

export function resolveSelector(selector: string, routes: readonly RouteDef[]): SelectorResult {
  const s = selector.trim();
  const ops = (pred: (r: RouteDef) => boolean) => ({
    ok: true as const,
    operations: new Set(routes.filter(pred).map((r) => r.operation)),
  });

  if ((RISK_CLASSES as readonly string[]).includes(s)) {
    return ops((r) => riskClasses(r).includes(s as RiskClass));
  }
  const space = s.indexOf(" ");
  if (space > 0) return resolvePathPattern(s.slice(0, space), s.slice(space + 1).trim(), routes);
  const colon = s.indexOf(":");
  if (colon > 0) {
    const section = s.slice(0, colon);
    const access = s.slice(colon + 1);
    const sections = new Set(routes.map((r) => r.section));
    if (section !== "*" && !sections.has(section)) {
      const hint = didYouMean(section, sections);
      return {
        ok: false,
        error: `unknown section "${section}"${hint ? ` (did you mean "${hint}"?)` : ""}; sections: ${[...sections].join(", ")}`,
      };
    }
    if (!(ACCESS as readonly string[]).includes(access)) {
      return { ok: false, error: `unknown access "${access}" in "${s}"; expected read, write or *` };
    }
    const inSection = (r: RouteDef) => section === "*" || r.section === section;
    const exfiltrates = (r: RouteDef) => riskClasses(r).includes("exfiltrate");
    if (access === "read") return ops((r) => inSection(r) && isRead(r) && !exfiltrates(r));
    if (access === "write") return ops((r) => inSection(r) && !isRead(r));
    return ops((r) => inSection(r) && !exfiltrates(r));
  }
  const known = new Set(routes.map((r) => r.operation));
  if (known.has(s)) return { ok: true, operations: new Set([s]) };
  const hint = didYouMean(s, [...known, ...RISK_CLASSES]);
  return {
    ok: false,
    error: `unknown operation "${s}"${hint ? ` (did you mean "${hint}"?)` : ""}; see \`portcullis operations\``,
  };
}

function resolvePathPattern(method: string, pattern: string, routes: readonly RouteDef[]): SelectorResult {
  if (!METHODS.has(method)) {
    return {
      ok: false,
      error: `unknown method "${method}"; expected GET, HEAD, POST, PUT, DELETE, OPTIONS or *`,
    };
  }
  if (!pattern.startsWith("/")) return { ok: false, error: `path pattern "${pattern}" must start with /` };
  const want = pattern.split("/").slice(1);
  const matches = routes.filter(
    (r) => (method === "*" || r.method === method || r.method === "*") && pathMatches(want, r.specPath),
  );
  if (matches.length === 0) {
    return {
      ok: false,
      error: `"${method} ${pattern}" matches no Docker API route; see \`portcullis operations\``,
    };
  }
  return { ok: true, operations: new Set(matches.map((r) => r.operation)) };
}

function pathMatches(want: readonly string[], specPath: string): boolean {
  const have = specPath.split("/").slice(1);
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string;
    if (w === "**" && i === want.length - 1) return true;
    const h = have[i];
    if (h === undefined) return false;
    if (w === "*") continue;
    const wVar = w.startsWith("{") && w.endsWith("}");
    const hVar = h.startsWith("{") && h.endsWith("}");
    if (wVar !== hVar || (!wVar && w !== h)) return false;
  }
  return want.length === have.length;
}
