/** How a route's connection behaves once the daemon answers. */
export type RouteKind = "plain" | "stream" | "hijack";

/** One route dockerd serves, as its router registers it. Plain data, generated from the specs. */
export interface RouteDef {
  /** Named operation: the spec's operationId, or a name we give routes the spec omits. */
  readonly operation: string;
  /** HTTP method, upper case, exactly as dockerd's router compares it. */
  readonly method: string;
  /** Path as the spec writes it, e.g. `/containers/{id}/json`. */
  readonly specPath: string;
  /** Path as dockerd's gorilla/mux router registers it, e.g. `/containers/{name:.*}/json`. */
  readonly muxPath: string;
  /** API section: the first path segment (`containers`, `exec`, `_ping`, ...). */
  readonly section: string;
  /** First API version whose spec lists the route (e.g. "1.41"); routes absent from every spec say "daemon". */
  readonly since: string;
  readonly kind: RouteKind;
  /** Where the route comes from: the official spec, or dockerd's router only. */
  readonly source: "spec" | "daemon";
}
