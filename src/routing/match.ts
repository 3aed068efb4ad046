/**
 * Route matching with gorilla/mux semantics: templates compiled to anchored regexes, tried in
 * dockerd's registration order, first match wins, method compared case-sensitively.
 */
import type { RouteDef } from "./route-def.js";

export interface RouteMatch {
  readonly route: RouteDef;
  /** Path variables by name, e.g. `{ name: "web" }` for `/containers/web/json`. */
  readonly params: Readonly<Record<string, string>>;
}

interface CompiledRoute {
  readonly route: RouteDef;
  readonly regex: RegExp;
  readonly names: readonly string[];
}

/** Routes bucketed by method, then by the route's literal first path segment, order preserved. */
export interface RouteIndex {
  readonly byMethod: ReadonlyMap<string, MethodBucket>;
  readonly anyMethod: MethodBucket;
}

interface MethodBucket {
  readonly bySegment: ReadonlyMap<string, readonly CompiledRoute[]>;
  /** Routes whose first segment is a variable (they may match any first segment). */
  readonly wildcard: readonly CompiledRoute[];
}

const ANY_METHOD = "*";

/** Compiles a mux template such as `/containers/{name:.*}/json` into an anchored regex. */
export function compileMuxTemplate(template: string): { regex: RegExp; names: string[] } {
  const names: string[] = [];
  let source = "^";
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf("{", i);
    if (open === -1) {
      source += escapeRegex(template.slice(i));
      break;
    }
    source += escapeRegex(template.slice(i, open));
    const close = findClosingBrace(template, open);
    const body = template.slice(open + 1, close);
    const colon = body.indexOf(":");
    const name = colon === -1 ? body : body.slice(0, colon);
    const pattern = colon === -1 ? "[^/]+" : body.slice(colon + 1);
    names.push(name);
    source += `(${pattern})`;
    i = close + 1;
  }
  // dotAll: Go's `.` matches every rune but "\n" (control characters never get this far).
  return { regex: new RegExp(`${source}$`, "su"), names };
}

function findClosingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === "{") depth++;
    else if (s[i] === "}" && --depth === 0) return i;
  }
  throw new Error(`unbalanced braces in route template ${s}`);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** The literal first segment of a template, or null when it begins with a variable. */
function literalFirstSegment(template: string): string | null {
  const end = template.indexOf("/", 1);
  const seg = end === -1 ? template.slice(1) : template.slice(1, end);
  return seg.includes("{") ? null : seg;
}

function firstSegment(path: string): string {
  const end = path.indexOf("/", 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

export function buildRouteIndex(routes: readonly RouteDef[]): RouteIndex {
  const compiled = routes.map((route): CompiledRoute & { first: string | null } => {
    const { regex, names } = compileMuxTemplate(route.muxPath);
    return { route, regex, names, first: literalFirstSegment(route.muxPath) };
  });
  const methods = new Set(routes.map((r) => r.method).filter((m) => m !== ANY_METHOD));
  const bucketFor = (method: string | null): MethodBucket => {
    const forMethod = compiled.filter((c) => c.route.method === ANY_METHOD || c.route.method === method);
    const segments = new Set(forMethod.map((c) => c.first).filter((s): s is string => s !== null));
    const bySegment = new Map<string, CompiledRoute[]>();
    for (const seg of segments) {
      bySegment.set(
        seg,
        forMethod.filter((c) => c.first === seg || c.first === null),
      );
    }
    return { bySegment, wildcard: forMethod.filter((c) => c.first === null) };
  };
  const byMethod = new Map<string, MethodBucket>();
  for (const m of methods) byMethod.set(m, bucketFor(m));
  return { byMethod, anyMethod: bucketFor(null) };
}

/** Finds the route dockerd would dispatch `method routePath` to, or null (dockerd: 404 page not found). */
export function matchRoute(index: RouteIndex, method: string, routePath: string): RouteMatch | null {
  const bucket = index.byMethod.get(method) ?? index.anyMethod;
  const candidates = bucket.bySegment.get(firstSegment(routePath)) ?? bucket.wildcard;
  for (const c of candidates) {
    const m = c.regex.exec(routePath);
    if (m === null) continue;
    const params: Record<string, string> = Object.create(null);
    c.names.forEach((name, i) => {
      params[name] = m[i + 1] ?? "";
    });
    return { route: c.route, params };
  }
  return null;
}
