/**
 * The routing corpus: hostile request-targets, the harmless way to ask dockerd about them, how to
 * classify dockerd's answer, and an independent model of dockerd 20.10's router (the "oracle") used
 * for the requests that are never sent to a real daemon because their handler would act.
 *
 * Used by scripts/record-routing-corpus.mjs (writes test/data/routing-corpus.json) and by
 * test/e2e/routing-differential.test.ts (checks the recording still holds, and that portcullis
 * classifies every entry as dockerd does). Importing this module has no side effects.
 *
 * Targets are JS strings with one char per wire byte (latin1), so NUL, CR and bytes >= 0x80 survive
 * the JSON file unchanged.
 */
import type { RouteDef } from "../../src/routing/route-def.js";
import { header, httpRequest, type RawExchange, type RawTarget, rawExchange } from "./raw-http.js";

/** The name used wherever a route wants an id: no object by this name ever exists. */
export const DUMMY = "portcullis-nonexistent";
export const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"] as const;
export const GENERATED_COUNT = 500;
export const SEED = 0x90c7c111;

export interface CorpusTarget {
  readonly target: string;
  readonly source: "hand" | "route" | "generated";
  readonly note?: string;
}

/* ------------------------------------------------------------------ PRNG */

/** Whether any char code of `s` satisfies `test` (control bytes, written without regex literals). */
function hasByte(s: string, test: (code: number) => boolean): boolean {
  for (let i = 0; i < s.length; i++) if (test(s.charCodeAt(i))) return true;
  return false;
}

/** mulberry32: a tiny deterministic PRNG, returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)] as T;
}

/* ------------------------------------------------------------------ hand-written targets */

const D = DUMMY;
const V = "/v1.41";

/** Hand-written hostile and edge-case targets, grouped by what they probe. */
export function handWrittenTargets(): CorpusTarget[] {
  const groups: Record<string, string[]> = {
    baseline: [
      `${V}/containers/json`,
      "/containers/json",
      "/_ping",
      `${V}/_ping`,
      "/version",
      `${V}/info`,
      `${V}/containers/${D}/json`,
    ],
    "dot segments": [
      "//containers/json",
      `${V}//containers/json`,
      "/./containers/json",
      "/containers/../containers/json",
      `${V}/containers/../containers/json`,
      "/containers/json/..",
      "/containers/json/.",
      `${V}/containers/json/./`,
      `${V}/containers/${D}//json`,
      "//containers/json?all=1",
      `${V}/containers/x/../../secrets`,
      "/..",
      "/../containers/json",
      `${V}/..`,
      `${V}/../../containers/json`,
      `${V}/containers/.../json`,
      `${V}/containers/.${D}/json`,
      `${V}/containers/${D}./json`,
      `${V}/containers/..json`,
      "/.",
      "/./",
    ],
    "encoded dots": [
      `${V}/containers/%2e%2e/images/json`,
      `${V}/containers/%2E%2E/images/json`,
      `${V}/containers/.%2e/images/json`,
      `${V}/%2e/containers/json`,
      "/%2e%2e/containers/json",
      `${V}/containers/json/%2e`,
      `${V}/containers/%2e/json`,
      `${V}/containers/%2e%2e%2f%2e%2e%2fsecrets`,
      `${V}/containers/${D}%2F..%2Fjson`,
    ],
    "double encoding": [
      `${V}/containers/%252e%252e/images/json`,
      `${V}/containers/json%252F`,
      `${V}/containers/${D}%252Fjson`,
      `${V}/%2563ontainers/json`,
      `${V}/containers/${D}%25/json`,
      `${V}/containers/%25/json`,
    ],
    "encoded slash": [
      "/containers%2Fjson",
      `${V}/containers%2Fjson`,
      "/v1.41%2Fcontainers%2Fjson",
      `${V}/containers/${D}%2Fjson`,
      `${V}/containers/${D}%2fjson`,
      `${V}/containers%2F${D}%2Fjson`,
      `${V}/containers/${D}%2Fstop`,
      `${V}/containers/${D}%2Fexec`,
      `${V}/containers/${D}%2Fattach%2Fws`,
      `${V}/containers/${D}/attach%2Fws`,
      `${V}/images/docker.io%2Flibrary%2F${D}:latest/json`,
      `${V}/images/${D}%3Alatest/json`,
      "/%2Fcontainers/json",
      `${V}/containers/x%2F%2Fjson`,
      "%2Fcontainers/json",
      `${V}%2F_ping`,
      "%2F_ping",
    ],
    backslash: [
      `${V}/containers\\json`,
      `${V}/containers%5Cjson`,
      `${V}/containers%5cjson`,
      `${V}/containers/${D}%5Cjson`,
      `${V}/containers/${D}\\json`,
      "\\containers\\json",
      `${V}/secrets\\..\\containers\\json`,
      `${V}/containers/${D}\\..\\..\\json`,
      `${V}\\containers\\json`,
    ],
    semicolon: [
      `${V}/containers/json;x=1`,
      `${V}/containers;/json`,
      `${V}/containers/${D};/json`,
      `${V}/containers/${D}/json;`,
      `${V}/containers/${D}/json%3B`,
      `${V}/containers/${D};x=1/json`,
      "/_ping;",
    ],
    "encoded control bytes": [
      `${V}/containers/json%00`,
      `${V}/containers/${D}%00/json`,
      `${V}/containers/json%0d%0a`,
      `${V}/containers/${D}%0a/json`,
      `${V}/containers/${D}%0d/json`,
      `${V}/containers/${D}%09/json`,
      `${V}/containers/${D}%7f/json`,
      `${V}/containers/${D}%1b/json`,
      `${V}/containers/${D}%0d%0aX-Injected:%201/json`,
      `${V}/containers/${D}/json%00.json`,
      "/_ping%00",
    ],
    "raw control bytes": [
      `${V}/containers/json\x00`,
      `${V}/containers/js\x01on`,
      `${V}/containers/json\x7f`,
      `${V}/containers/json\t`,
      `${V}/containers/${D}\x0b/json`,
      `${V}/containers/${D}\x1b/json`,
    ],
    "raw space": [`${V}/containers/ ${D}/json`],
    "non-ASCII and invalid UTF-8": [
      `${V}/containers/${D}%ff/json`,
      `${V}/containers/%c3%28/json`,
      `${V}/containers/caf%c3%a9/json`,
      `${V}/containers/%e2%80%8b/json`,
      `${V}/%ef%bc%8fcontainers/json`,
      `${V}/containers/%c0%af/json`,
      `${V}/containers/%ed%a0%80/json`,
      `${V}/containers/caf\xc3\xa9/json`,
      `${V}/containers/\xff/json`,
    ],
    "invalid escapes": [
      `${V}/containers/json%zz`,
      `${V}/containers/json%`,
      `${V}/containers/json%2`,
      `${V}/containers/json%%32%46`,
      `${V}/containers/json%u002f`,
      `${V}/containers/json?x=%zz`,
      `${V}/containers/${D}%g0/json`,
    ],
    case: [
      "/CONTAINERS/json",
      "/V1.41/containers/json",
      `${V}/CONTAINERS/json`,
      `${V}/Containers/json`,
      `${V}/containers/JSON`,
      `${V}/containers/${D}/JSON`,
      `${V}/containers/${D}/Start`,
      `${V}/_PING`,
      `${V}/containers/%4Ason`,
      `${V}/Containers/${D}`,
    ],
    "encoded letters": [
      "/%63ontainers/json",
      `${V}/containers/${D.replace("e", "%65")}/json`,
      `${V}/%5fping`,
      "/%76%31%2e%34%31/containers/json",
      "/v1%2e41/containers/json",
      `${V}/containers/json%3Fall=1`,
      `${V}/containers/json%23`,
      `${V}/containers/%20/json`,
      `${V}/containers/${D}/json%20`,
      `${V}/containers/+/json`,
    ],
    "absolute-form": [
      "http://x/v1.41/containers/json",
      "http://evil/containers/json",
      "HTTP://x/_ping",
      "http://x",
      "http://x?y",
      "https://x/_ping",
      "http://x//containers/json",
      "http://x/v1.41/containers/../json",
      "http://x/v1.41/containers%2Fjson",
      "unix:///var/run/docker.sock/containers/json",
      "http:/containers/json",
      "http:containers/json",
      "//x/_ping",
    ],
    "authority-form": ["localhost:2375", "x:80", "[::1]:2375", "docker.sock", "containers/json", "_ping"],
    asterisk: ["*", "*/containers/json", "/*", `${V}/*`],
    "trailing slash": [
      "/containers/json/",
      `${V}/containers/json/`,
      `${V}/containers/${D}/json/`,
      "/_ping/",
      `${V}/networks/`,
      "/networks/",
      `${V}/networks/${D}/`,
      `${V}/containers/${D}/`,
      `${V}/images/${D}/`,
      `${V}/volumes/`,
      `${V}/volumes/${D}/`,
      `${V}/exec/${D}/`,
      `${V}/`,
      "/",
      V,
      `${V}/info/`,
    ],
    "version prefix": [
      "/v1.41.0/containers/json",
      "/v01.41/containers/json",
      "/v1.41./containers/json",
      "/v./containers/json",
      "/v1..41/containers/json",
      "/v999/containers/json",
      "/v1.11/containers/json",
      "/v1.12/containers/json",
      "/v1/containers/json",
      "/v1.4/containers/json",
      "/v/containers/json",
      `${V}/v1.41/containers/json`,
      "/v1.041/containers/json",
      "/v99999999999999999999/containers/json",
      "/v1.41.99.1/containers/json",
      `/v1.23/containers/${D}/json`,
      `/v1.24/containers/${D}/json`,
      "/v-1.41/containers/json",
      "/v+1.41/containers/json",
      "/v1,41/containers/json",
      "/v1.41abc/containers/json",
      "/v%31.41/containers/json",
      "/vv1.41/containers/json",
      `${V}?x`,
      "/v1.42/containers/json",
      "/v0/_ping",
      "/v1.11/_ping",
      "/v1.11/nonexistent",
      "/v999/nonexistent",
      "/v1.41.0/_ping",
      "/v1.41/",
      "/v1.41.0",
    ],
    "very long": [
      `${V}/containers/${"a".repeat(4000)}/json`,
      `${V}/containers/${"a/".repeat(1000)}json`,
      `${V}/${"containers/".repeat(200)}json`,
      `/${"%2e%2e/".repeat(300)}containers/json`,
      `${V}/containers/json?${"a=1&".repeat(1000)}`,
      `${V}/containers/${"a".repeat(70_000)}/json`,
    ],
    "names with slashes": [
      `${V}/containers/x/${D}/json`,
      `${V}/containers/${D}/json/json`,
      `${V}/containers/create/start`,
      `${V}/containers/json/start`,
      `${V}/images/docker.io/library/${D}:latest/json`,
      `${V}/images/a/b/c/tag`,
      `${V}/exec/a/${D}/json`,
      `${V}/networks/a/${D}`,
      `${V}/volumes/a/${D}`,
      `${V}/plugins/a/${D}/json`,
      `${V}/services/a/${D}`,
      `${V}/secrets/a/${D}`,
      `${V}/containers/${D}/exec/start`,
      `${V}/containers/${D}/attach/ws/x`,
      `${V}/containers/${D}/checkpoints/a/b`,
      `${V}/containers/a/b/checkpoints/c`,
      `${V}/containers/${D}/checkpoints/c`,
      `${V}/exec/${D}/start/start`,
      `${V}/containers/${D}/stop/kill`,
      `${V}/containers/json/${D}`,
      `${V}/containers/${D}/archive/json`,
    ],
    "queries and fragments": [
      `${V}/containers/json?all=1&all=0`,
      `${V}/containers/json#frag`,
      `${V}/containers/${D}/json#/../../x`,
      `${V}/containers/json?`,
      `${V}/containers/json??`,
      `${V}/containers/json?/../../secrets`,
      `${V}/containers/${D}/json?x=%2F..%2F`,
      `${V}/containers/json#?x`,
    ],
    "daemon-only routes": [
      `${V}/debug/vars`,
      "/debug/vars",
      "/debug/pprof/",
      "/debug/pprof/cmdline",
      `/debug/pprof/${D}`,
      `/debug/pprof/${D}/x`,
      "/debug/pprof/profile",
      "/debug/pprof/trace",
      `${V}/grpc`,
      `${V}/session`,
      `${V}/containers/${D}/copy`,
      `${V}/containers/${D}/checkpoints`,
      `${V}/build/cancel`,
      `${V}/images/${D}/attestations`,
      `${V}/volumes/${D}`,
    ],
    "hijack routes": [
      `${V}/exec/${D}/start`,
      `${V}/containers/${D}/attach`,
      `${V}/containers/${D}/attach/ws`,
      `${V}/containers/${D}/attach/`,
      `${V}/containers/${D}%2Fattach`,
      `/v1.41.0/exec/${D}/start`,
    ],
  };
  const out: CorpusTarget[] = [];
  for (const [note, targets] of Object.entries(groups))
    for (const target of targets) out.push({ target, source: "hand", note });
  return out;
}

/** Every route of the table with the dummy id in each variable, versioned and not. */
export function routeTargets(routes: readonly RouteDef[]): CorpusTarget[] {
  const out: CorpusTarget[] = [];
  for (const r of routes) {
    const path = r.muxPath.replace(/\{[^}]+\}/g, DUMMY);
    out.push({ target: path, source: "route", note: r.operation });
    out.push({ target: `${V}${path}`, source: "route", note: r.operation });
  }
  return out;
}

/* ------------------------------------------------------------------ generated targets */

const TRICKY_PIECES = [
  ".",
  "..",
  "",
  "%2e",
  "%2e%2e",
  "%2E.",
  "%252e",
  "%252e%252e",
  "%2F",
  "%2f",
  "%5C",
  "\\",
  ";",
  ";x=1",
  "%00",
  "%0a",
  "%0d",
  "%20",
  "%3F",
  "%23",
  "%25",
  "%ff",
  "%c3%a9",
  "%zz",
  "JSON",
  "Containers",
  "%63ontainers",
  `a%2F${DUMMY}`,
  `${DUMMY}%2Fjson`,
  "x:y",
  "+",
  "~",
  "*",
  "-",
  "_ping",
  "v1.41",
  "...",
];

const VERSION_PREFIXES = [
  "",
  "",
  "",
  "/v1.41",
  "/v1.41",
  "/v1.41",
  "/v1.12",
  "/v1.41.0",
  "/v01.41",
  "/v",
  "/v999",
  "/V1.41",
  "/v1.11",
  "/v.",
  "/v1.41%2F",
  "/v1..41",
  "//v1.41",
];

function literalSegments(routes: readonly RouteDef[]): string[] {
  const segs = new Set<string>();
  for (const r of routes) for (const s of r.muxPath.split("/")) if (s !== "" && !s.includes("{")) segs.add(s);
  return [...segs].sort();
}

function encodeOneChar(rand: () => number, s: string): string {
  const plain = [...s].map((c, i) => [c, i] as const).filter(([c]) => /[A-Za-z0-9._-]/.test(c));
  if (plain.length === 0) return s;
  const [c, i] = pick(rand, plain);
  const hex = c.charCodeAt(0).toString(16).padStart(2, "0");
  return `${s.slice(0, i)}%${rand() < 0.5 ? hex : hex.toUpperCase()}${s.slice(i + 1)}`;
}

function flipCase(rand: () => number, s: string): string {
  const letters = [...s].map((c, i) => [c, i] as const).filter(([c]) => /[a-z]/i.test(c));
  if (letters.length === 0) return s;
  const [c, i] = pick(rand, letters);
  const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
  return `${s.slice(0, i)}${flipped}${s.slice(i + 1)}`;
}

/** Near-miss mutations of a path. */
function mutate(rand: () => number, path: string): string {
  const segs = path.split("/");
  switch (Math.floor(rand() * 12)) {
    case 0: // encode one slash
      return path.replace(/\/(?=[^/]*$)/, pick(rand, ["%2F", "%2f", "%5C", "\\"]));
    case 1: // insert a tricky segment
      segs.splice(1 + Math.floor(rand() * Math.max(1, segs.length - 1)), 0, pick(rand, TRICKY_PIECES));
      return segs.join("/");
    case 2: // trailing slash or dot
      return path + pick(rand, ["/", "/.", "/..", "//", "%2F", ";", "%00", "%20", "?x=1", "#x"]);
    case 3:
      return encodeOneChar(rand, path);
    case 4:
      return flipCase(rand, path);
    case 5: // double slash somewhere
      return path.replace(/\//g, (m) => (rand() < 0.2 ? "//" : m));
    case 6: // replace a segment by a tricky piece
      if (segs.length > 1) segs[1 + Math.floor(rand() * (segs.length - 1))] = pick(rand, TRICKY_PIECES);
      return segs.join("/");
    case 7: // duplicate a segment
      if (segs.length > 1) {
        const i = 1 + Math.floor(rand() * (segs.length - 1));
        segs.splice(i, 0, segs[i] as string);
      }
      return segs.join("/");
    case 8: // drop a segment
      if (segs.length > 2) segs.splice(1 + Math.floor(rand() * (segs.length - 1)), 1);
      return segs.join("/");
    case 9: // ".." that climbs back
      if (segs.length > 2) {
        const i = 1 + Math.floor(rand() * (segs.length - 1));
        segs.splice(
          i,
          0,
          pick(rand, ["x", DUMMY, "containers", "secrets"]),
          pick(rand, ["..", "%2e%2e", ".%2e"]),
        );
      }
      return segs.join("/");
    case 10: // absolute-form
      return `http://${pick(rand, ["x", "localhost", "docker"])}${path}`;
    default:
      return encodeOneChar(rand, encodeOneChar(rand, path));
  }
}

/** Property-based targets: route templates and segment soup, mutated, from a fixed seed. */
export function generatedTargets(
  routes: readonly RouteDef[],
  count = GENERATED_COUNT,
  seed = SEED,
  exclude: ReadonlySet<string> = new Set(),
): CorpusTarget[] {
  const rand = prng(seed);
  const literals = literalSegments(routes);
  const names = [
    DUMMY,
    DUMMY,
    `x/${DUMMY}`,
    `${DUMMY}/json`,
    "json",
    "create",
    `${DUMMY}:latest`,
    `docker.io/library/${DUMMY}`,
  ];
  const seen = new Set<string>(exclude);
  const out: CorpusTarget[] = [];
  for (let attempts = 0; out.length < count && attempts < count * 20; attempts++) {
    let path: string;
    let note: string;
    if (rand() < 0.6) {
      const r = pick(rand, routes);
      path = r.muxPath.replace(/\{[^}]+\}/g, () => pick(rand, names));
      note = `mutated ${r.operation}`;
    } else {
      const n = 1 + Math.floor(rand() * 4);
      const segs: string[] = [];
      for (let i = 0; i < n; i++) {
        const x = rand();
        segs.push(x < 0.55 ? pick(rand, literals) : x < 0.75 ? DUMMY : pick(rand, TRICKY_PIECES));
      }
      path = `/${segs.join("/")}`;
      note = "segment soup";
    }
    const mutations = Math.floor(rand() * 3);
    for (let i = 0; i < mutations; i++) path = mutate(rand, path);
    const prefix = pick(rand, VERSION_PREFIXES);
    const target = path.startsWith("http") ? path : prefix + path;
    if (seen.has(target) || hasByte(target, (c) => c <= 0x20 || c >= 0x7f)) continue;
    seen.add(target);
    out.push({ target, source: "generated", note });
  }
  return out;
}

/** Hand-written, then one per route, then generated; duplicates dropped (first kept). */
export function buildCorpusTargets(routes: readonly RouteDef[]): CorpusTarget[] {
  const seen = new Set<string>();
  const out: CorpusTarget[] = [];
  for (const t of [...handWrittenTargets(), ...routeTargets(routes)]) {
    if (seen.has(t.target)) continue;
    seen.add(t.target);
    out.push(t);
  }
  return [...out, ...generatedTargets(routes, GENERATED_COUNT, SEED, seen)];
}

/* ------------------------------------------------------------------ which requests may be sent */

/** Lenient percent-decoding for the safety filter (never fails; decodes twice to stay on the safe side). */
function looseDecode(s: string): string {
  const once = (x: string) =>
    x.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  return once(once(s));
}

/** Handlers that would change state, reach out to the network or run for long, whatever the id. */
const NEVER_ANY_METHOD = /images\/search|distribution|plugins\/privileges|pprof\/profile|pprof\/trace/;
const NEVER_WRITE =
  /prune|swarm|session|grpc|auth|build|images\/create|images\/load|plugins\/create|commit|pull|push|upgrade|debug|pprof/;

/**
 * Why a request is not sent to a real daemon, or null when it is harmless: the dummy id matches no
 * object, so the handler can only answer an error (or a read). Judged on the target decoded twice,
 * case-insensitively, so that no encoding or case trick can smuggle a dangerous handler past it.
 */
export function notAskedReason(method: string, target: string): string | null {
  const t = looseDecode(target).toLowerCase().replace(/\\/g, "/");
  if (NEVER_ANY_METHOD.test(t)) return "its handler reaches the network or runs for 30 s";
  if (method !== "GET" && method !== "HEAD" && method !== "OPTIONS" && NEVER_WRITE.test(t))
    return "its handler could change state";
  return null;
}

/* ------------------------------------------------------------------ asking the daemon */

/**
 * redirect: gorilla's clean-path 301; not-found-route: the router's JSON 404 `page not found`;
 * handler: a dockerd handler (or its version middleware) answered; bad-request: Go's net/http
 * refused the request line (plain-text 400); net-http: Go's net/http answered itself (`OPTIONS *`).
 */
export type DaemonClass = "redirect" | "not-found-route" | "handler" | "bad-request" | "net-http";

export interface DaemonAnswer {
  readonly status: number;
  readonly class: DaemonClass;
  /** First 100 chars of the body (utf8). */
  readonly body: string;
  /** The decoded message (JSON `message` or text), up to 2000 chars. */
  readonly message: string;
  /** Handler answers: the middleware's Api-Version header was present. */
  readonly apiVersionHeader: boolean;
}

/** The exact bytes sent for a corpus request. */
export function corpusRequest(method: string, target: string): Buffer {
  const headers: [string, string][] = [["Connection", "close"]];
  if (method === "POST" || method === "PUT") headers.push(["Content-Length", "0"]);
  return httpRequest(method, target, headers);
}

const DF_BUSY = /^HTTP\/1\.1 500 [\s\S]*a disk usage operation is already running/;

/**
 * Sends one corpus request on a fresh connection. dockerd runs one disk-usage scan at a time and
 * answers another meanwhile with a 500: with requests in flight two /system/df variants can overlap,
 * so that answer is asked again, briefly and bounded.
 */
export async function exchangeCorpusRequest(
  to: RawTarget,
  method: string,
  target: string,
): Promise<RawExchange> {
  const once = () =>
    rawExchange(to, corpusRequest(method, target), {
      responses: 1,
      settleMs: 0,
      timeoutMs: 5_000,
      headGraceMs: 300,
      methods: [method],
    });
  let ex = await once();
  for (let i = 0; i < 40 && DF_BUSY.test(ex.raw.toString("latin1")); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    ex = await once();
  }
  return ex;
}

/** Sends one corpus request on a fresh connection and reads the answer (streams: the head and a moment). */
export async function ask(
  to: RawTarget,
  method: string,
  target: string,
): Promise<
  | {
      status: number;
      headers: readonly (readonly [string, string])[];
      body: Buffer;
    }
  | { error: string }
> {
  const ex = await exchangeCorpusRequest(to, method, target);
  const r = ex.finals[0];
  if (r !== undefined) return { status: r.status, headers: r.headers, body: r.body };
  // A stream (events, a hijack that did not end): take the head alone.
  const head = /^HTTP\/1\.[01] (\d{3})/.exec(ex.raw.toString("latin1"));
  if (head) {
    const end = ex.raw.indexOf("\r\n\r\n");
    const lines = ex.raw
      .subarray(0, end === -1 ? ex.raw.length : end)
      .toString("latin1")
      .split("\r\n")
      .slice(1);
    const headers = lines.map(
      (l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()] as const,
    );
    return { status: Number(head[1]), headers, body: Buffer.alloc(0) };
  }
  return { error: ex.socketError ?? (ex.closed ? "closed without an answer" : "no answer") };
}

/**
 * How dockerd's answer says it treated the request. Handler answers carry the middleware's
 * Api-Version header, except the raw error dockerd writes on a hijacked attach; the router's own
 * answers (301, page not found) and net/http's never do.
 */
export function classify(
  method: string,
  status: number,
  headers: readonly (readonly [string, string])[],
  body: Buffer,
): DaemonClass {
  const api = header({ headers }, "api-version") !== undefined;
  if (status === 301 && !api) return "redirect";
  if (status === 400 && !api) return "bad-request";
  if (status === 404 && !api) {
    // JSON, or plain text when the (versioned catch-all) path says API < 1.24
    const pageNotFound =
      method === "HEAD"
        ? ["29", "15"].includes(header({ headers }, "content-length") ?? "")
        : ['{"message":"page not found"}\n', "page not found\n"].includes(body.toString("utf8"));
    if (pageNotFound) return "not-found-route";
  }
  if (!api && method === "OPTIONS" && status === 200) return "net-http";
  return "handler";
}

export function toAnswer(
  method: string,
  a: { status: number; headers: readonly (readonly [string, string])[]; body: Buffer },
): DaemonAnswer {
  const text = a.body.toString("utf8");
  let message = text;
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed?.message === "string") message = parsed.message;
  } catch {
    /* not JSON */
  }
  return {
    status: a.status,
    class: classify(method, a.status, a.headers, a.body),
    body: text.slice(0, 100),
    message: message.replace(/\r?\n$/, "").slice(0, 2000),
    apiVersionHeader: header(a, "api-version") !== undefined,
  };
}

/**
 * What a recorded answer must still look like when asked again: status, class and, for error
 * answers, the body. Success bodies (lists, info, version) vary between engines: only their shape.
 */
export function fingerprint(a: Pick<DaemonAnswer, "status" | "class" | "body">): string {
  if (a.status >= 200 && a.status < 300) {
    const shape = /^\{"[A-Za-z]+"/.exec(a.body)?.[0] ?? a.body.slice(0, 1);
    return `${a.status} ${a.class} ${shape}`;
  }
  return `${a.status} ${a.class} ${a.body}`;
}

/* ------------------------------------------------------------------ which handler answered */

/** One route asked canonically: the template of its answer, with the dummy name as a hole. */
export interface Signature {
  readonly operation: string;
  readonly method: string;
  readonly status: number;
  /** The message with every occurrence of the dummy name replaced by `\u0000NAME\u0000`. */
  readonly template: string;
}

const HOLE = "\u0000NAME\u0000";

export function signatureOf(operation: string, method: string, a: DaemonAnswer): Signature {
  const template =
    a.status >= 200 && a.status < 300 ? `2xx ${fingerprint(a)}` : a.message.split(DUMMY).join(HOLE);
  return { operation, method, status: a.status, template };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The operations whose canonical answer has the same shape as `a`, and the name the handler saw
 * when the message shows it. `strict`: the message matched the template exactly (the name is
 * reliable); loose matches allow the daemon to print a normalized name (tags, registries).
 */
export function handlerCandidates(
  signatures: readonly Signature[],
  method: string,
  a: DaemonAnswer,
): { operations: string[]; name?: string } {
  const ops = new Set<string>();
  const names = new Set<string>();
  const message = a.status >= 200 && a.status < 300 ? `2xx ${fingerprint(a)}` : a.message;
  for (const strict of [true, false]) {
    for (const s of signatures) {
      if (s.method !== method || s.status !== a.status) continue;
      if (!s.template.includes(HOLE)) {
        if (s.template === message) ops.add(s.operation);
        continue;
      }
      const parts = s.template.split(HOLE).map(escapeRe);
      const source = strict
        ? `^${parts[0]}(.*)${parts.slice(1).join("\\1")}$`
        : `^${parts.map((p) => p.replace(/:latest$/, "(?::latest)?")).join("(.*?)")}$`;
      const m = new RegExp(source, "s").exec(message);
      if (m) {
        ops.add(s.operation);
        if (strict) names.add(m[1] as string);
      }
    }
    if (ops.size > 0) break;
  }
  // the name is reliable only when every matching template reads the same name out of the message
  return { operations: [...ops].sort(), ...(names.size === 1 ? { name: [...names][0] as string } : {}) };
}

/* ------------------------------------------------------------------ an independent model of dockerd 20.10's router */

export type OracleResult =
  | { readonly class: "redirect" | "bad-request" | "not-found-route" | "net-http" }
  | {
      readonly class: "handler";
      readonly operation: string;
      readonly params: Readonly<Record<string, string>>;
      /** The route matched but the version middleware refuses the prefix (too old or too new). */
      readonly versionRejected?: "too-old" | "too-new";
    };

/**
 * Whether dockerd 20.10 (API 1.41) serves a route of the table: spec routes first listed after 1.41
 * are newer (ImageAttestations, VolumeUpdate, ...); daemon-only routes are all in 20.10.
 */
export function inDockerd2010(route: Pick<RouteDef, "since">): boolean {
  return route.since === "daemon" || compareVersions(route.since, "1.41") <= 0;
}

interface OracleRoute {
  readonly route: RouteDef;
  readonly versioned: RegExp | null;
  readonly plain: RegExp;
  readonly names: string[];
}

/**
 * Written from gorilla/mux v1.8 and Go's net/http/url/path as they behave, not from portcullis's
 * code: bytes (not UTF-8) throughout, `.` in a route regexp never matches "\n", a route matches
 * only when path and method both match, first match in registration order wins.
 */
export class Dockerd2010Router {
  private readonly routes: OracleRoute[];

  constructor(routes: readonly RouteDef[]) {
    this.routes = routes.filter(inDockerd2010).map((route) => {
      const names: string[] = [];
      const body = route.muxPath.replace(
        /[^{}]+|\{([^}:]+)(?::([^}]*))?\}/g,
        (m, name?: string, pattern?: string) => {
          if (name === undefined) return escapeRe(m);
          names.push(name);
          // Go's "." excludes "\n" (no s flag); a negated class like [^/] does match "\n".
          return `(${(pattern ?? "[^/]+").replace(/\./g, "[^\\n]")})`;
        },
      );
      const debug = route.section === "debug";
      return {
        route,
        names,
        // 20.10 registers /debug/* with no version prefix and no method restriction.
        versioned: debug ? null : new RegExp(`^/v[0-9.]+${body}$`),
        plain: new RegExp(`^${body}$`),
      };
    });
  }

  route(method: string, target: string): OracleResult {
    // request line: Go rejects any CTL byte in the target (net/url), and a space splits the line.
    if (hasByte(target, (c) => c <= 0x20 || c === 0x7f)) return { class: "bad-request" };
    let rest = target;
    // net/http answers `OPTIONS *` itself; any other method gets mux's clean-path redirect for "*"
    if (rest === "*") return method === "OPTIONS" ? { class: "net-http" } : { class: "redirect" };
    if (!rest.startsWith("/")) {
      // url.ParseRequestURI: a scheme is required, then `//authority`, a rooted path, or an opaque
      // rest (whose URL.Path is "", which mux redirects to "/"). Go routes on the path alone.
      const abs = /^[A-Za-z][A-Za-z0-9+.-]*:(.*)$/.exec(rest);
      if (abs === null) return { class: "bad-request" };
      rest = abs[1] as string;
      if (rest.startsWith("//")) {
        const end = rest.slice(2).search(/[/?]/);
        const authority = end === -1 ? rest.slice(2) : rest.slice(2, 2 + end);
        if (!validGoHost(authority)) return { class: "bad-request" };
        rest = end === -1 ? "" : rest.slice(2 + end);
      } else if (!rest.startsWith("/")) {
        return { class: "redirect" };
      }
      if (rest === "" || rest.startsWith("?")) return { class: "redirect" };
    }
    const q = rest.indexOf("?");
    const rawPath = q === -1 ? rest : rest.slice(0, q);
    // url.PathUnescape-style single decoding; a malformed escape is a 400 from net/http
    let path = "";
    for (let i = 0; i < rawPath.length; i++) {
      const c = rawPath[i] as string;
      if (c !== "%") {
        path += c;
        continue;
      }
      const hex = rawPath.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return { class: "bad-request" };
      path += String.fromCharCode(Number.parseInt(hex, 16));
      i += 2;
    }
    // gorilla cleanPath, then 301 when it differs
    if (cleanPath(path) !== path) return { class: "redirect" };
    let methodMismatch = false;
    for (const r of this.routes) {
      for (const [re, versioned] of [
        [r.versioned, true],
        [r.plain, false],
      ] as const) {
        if (re === null) continue;
        const m = re.exec(path);
        if (m === null) continue;
        if (r.route.method !== "*" && r.route.method !== method) {
          methodMismatch = true;
          continue;
        }
        const params: Record<string, string> = {};
        r.names.forEach((n, i) => {
          params[n] = m[i + 1] as string;
        });
        if (versioned) {
          const v = /^\/v([0-9.]+)/.exec(path)?.[1] as string;
          const cmpOld = compareVersions(v, "1.12");
          const cmpNew = compareVersions(v, "1.41");
          if (cmpOld < 0)
            return { class: "handler", operation: r.route.operation, params, versionRejected: "too-old" };
          if (cmpNew > 0)
            return { class: "handler", operation: r.route.operation, params, versionRejected: "too-new" };
        }
        return { class: "handler", operation: r.route.operation, params };
      }
    }
    void methodMismatch; // MethodNotAllowedHandler and NotFoundHandler are the same 404 in dockerd
    return { class: "not-found-route" };
  }
}

/** net/url's host check: allowed characters, and %XX escapes only for bytes >= 0x80 (or %25). */
function validGoHost(host: string): boolean {
  const h = host.includes("@") ? host.slice(host.lastIndexOf("@") + 1) : host;
  if (!/^[A-Za-z0-9\-._~!$&'()*+,;=:[\]<>"%]*$/.test(h)) return false;
  for (const m of h.matchAll(/%(..)?/g)) {
    const hex = m[1];
    if (hex === undefined || !/^[0-9a-fA-F]{2}$/.test(hex)) return false;
    if (Number.parseInt(hex[0] as string, 16) < 8 && hex !== "25") return false;
  }
  return true;
}

/** Go's path.Clean on a rooted path, with gorilla's trailing-slash rule. */
function cleanPath(p: string): string {
  if (p === "") return "/";
  const rooted = p.startsWith("/") ? p : `/${p}`;
  const stack: string[] = [];
  for (const part of rooted.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") stack.pop();
    else stack.push(part);
  }
  let out = `/${stack.join("/")}`;
  if (rooted.endsWith("/") && out !== "/") out += "/";
  return out;
}

/** Docker's versions.compare: dot pieces as integers, an unparsable piece (Atoi error) is 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".");
  const pb = b.split(".");
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = toInt(pa[i]);
    const y = toInt(pb[i]);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** strconv.Atoi as versions.compare uses it: errors ignored, so "" is 0 and an overflow is clamped. */
function toInt(s: string | undefined): number {
  if (s === undefined || !/^[0-9]+$/.test(s)) return 0;
  const n = BigInt(s);
  return n > 9223372036854775807n ? Number.POSITIVE_INFINITY : Number(n);
}

/* ------------------------------------------------------------------ recording */

/** One method's recorded answer for a target. */
export type RecordedAnswer =
  | {
      /** daemon status, class, first 100 chars of the body */
      readonly s: number;
      readonly c: DaemonClass;
      readonly b: string;
      /** handler answers: operations whose canonical answer has this shape */
      readonly ops?: readonly string[];
      /** handler answers: the name the handler printed (when it did, and it is short) */
      readonly name?: string;
      /** handler answers: the version middleware refused the prefix (ops come from asking with /v1.41) */
      readonly v?: "too-old" | "too-new";
    }
  | { readonly notAsked: string }
  | { readonly error: string };

export interface CorpusEntry {
  readonly t: string;
  readonly src: CorpusTarget["source"];
  readonly note?: string;
  readonly m: Readonly<Record<string, RecordedAnswer>>;
}

export interface Corpus {
  readonly about: string;
  readonly daemon: string;
  readonly seed: number;
  readonly generatedCount: number;
  readonly methods: readonly string[];
  readonly counts: {
    readonly targets: number;
    readonly hand: number;
    readonly route: number;
    readonly generated: number;
    readonly entries: number;
    readonly asked: number;
    readonly notAsked: number;
  };
  readonly signatures: readonly Signature[];
  readonly entries: readonly CorpusEntry[];
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (x: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}

const VERSION_REJECT = /^client version .* is too (old|new)/;

/** Asks the daemon about one request and turns the answer into a recorded one. */
export async function askAndClassify(
  to: RawTarget,
  method: string,
  target: string,
  signatures: readonly Signature[],
): Promise<RecordedAnswer> {
  const why = notAskedReason(method, target);
  if (why !== null) return { notAsked: why };
  const raw = await ask(to, method, target);
  if ("error" in raw) return { error: raw.error };
  const a = toAnswer(method, raw);
  if (a.class !== "handler") return { s: a.status, c: a.class, b: a.body };
  const versionReject = VERSION_REJECT.exec(a.message);
  const headVersion = method === "HEAD" && a.status === 400 ? prefixVersionVerdict(target) : null;
  if (versionReject || headVersion) {
    const v = headVersion ?? (versionReject?.[1] === "old" ? "too-old" : "too-new");
    // the route matched but the prefix was refused: ask again with a valid prefix to see which handler
    const alt = /^\/v[0-9.]+(?=\/)/.exec(target) ? target.replace(/^\/v[0-9.]+(?=\/)/, "/v1.41") : null;
    if (alt === null || notAskedReason(method, alt) !== null)
      return { s: a.status, c: a.class, b: a.body, v };
    const again = await ask(to, method, alt);
    if ("error" in again) return { s: a.status, c: a.class, b: a.body, v };
    const cands = handlerCandidates(signatures, method, toAnswer(method, again));
    return { s: a.status, c: a.class, b: a.body, v, ops: cands.operations, ...nameField(cands.name) };
  }
  const cands = handlerCandidates(signatures, method, a);
  return { s: a.status, c: a.class, b: a.body, ops: cands.operations, ...nameField(cands.name) };
}

/** HEAD answers have no body to read the version error from: judge the prefix (as the middleware does). */
function prefixVersionVerdict(target: string): "too-old" | "too-new" | null {
  const v = /^\/v([0-9.]+)\//.exec(target)?.[1];
  if (v === undefined) return null;
  if (compareVersions(v, "1.12") < 0) return "too-old";
  if (compareVersions(v, "1.41") > 0) return "too-new";
  return null;
}

function nameField(name: string | undefined): { name?: string } {
  return name !== undefined && name.length <= 300 ? { name } : {};
}

/** Asks each route once, canonically (dummy ids), for its answer's signature. */
export async function collectSignatures(to: RawTarget, routes: readonly RouteDef[]): Promise<Signature[]> {
  const sigs: Signature[] = [];
  await mapLimit(routes, 8, async (r) => {
    const methods = r.method === "*" ? METHODS.filter((m) => m !== "OPTIONS") : [r.method];
    for (const method of methods) {
      const path = r.muxPath.replace(/\{[^}]+\}/g, DUMMY);
      for (const target of [`${V}${path}`, path]) {
        if (notAskedReason(method, target) !== null) continue;
        const raw = await ask(to, method, target);
        if ("error" in raw) continue;
        const a = toAnswer(method, raw);
        if (a.class !== "handler") continue;
        sigs.push(signatureOf(r.operation, method, a));
        break;
      }
    }
  });
  return sigs.sort((x, y) => (x.operation + x.method).localeCompare(y.operation + y.method));
}

export async function recordCorpus(
  to: RawTarget,
  routes: readonly RouteDef[],
  progress: (done: number, total: number) => void = () => {},
): Promise<Corpus> {
  const versionRaw = await ask(to, "GET", "/version");
  const daemon =
    "error" in versionRaw
      ? "unknown"
      : (/"Version":"([^"]+)"/.exec(versionRaw.body.toString())?.[1] ?? "unknown");
  const signatures = await collectSignatures(to, routes);
  const targets = buildCorpusTargets(routes);
  const jobs = targets.flatMap((t) => METHODS.map((m) => [t, m] as const));
  let done = 0;
  const answers = await mapLimit(jobs, 16, async ([t, m]) => {
    const a = await askAndClassify(to, m, t.target, signatures);
    progress(++done, jobs.length);
    return a;
  });
  const entries: CorpusEntry[] = targets.map((t, i) => {
    const m: Record<string, RecordedAnswer> = {};
    METHODS.forEach((method, j) => {
      m[method] = answers[i * METHODS.length + j] as RecordedAnswer;
    });
    return { t: t.target, src: t.source, ...(t.note ? { note: t.note } : {}), m };
  });
  const flat = entries.flatMap((e) => Object.values(e.m));
  return {
    about:
      "What dockerd answered to each request-target x method, asked directly on its unix socket with dummy ids (portcullis-nonexistent). Recorded by scripts/record-routing-corpus.mjs; checked by test/e2e/routing-differential.test.ts. s=status c=class b=first 100 chars of body ops=handler operations name=name the handler printed v=version refused",
    daemon,
    seed: SEED,
    generatedCount: GENERATED_COUNT,
    methods: [...METHODS],
    counts: {
      targets: targets.length,
      hand: targets.filter((t) => t.source === "hand").length,
      route: targets.filter((t) => t.source === "route").length,
      generated: targets.filter((t) => t.source === "generated").length,
      entries: flat.length,
      asked: flat.filter((a) => "s" in a).length,
      notAsked: flat.filter((a) => "notAsked" in a).length,
    },
    signatures,
    entries,
  };
}

/** One entry per line, so diffs of a re-recording stay readable. */
export function serializeCorpus(c: Corpus): string {
  const { entries, signatures, ...head } = c;
  const lines = [
    "{",
    ...Object.entries(head).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},`),
    `  "signatures": [`,
    signatures.map((s) => `    ${JSON.stringify(s)}`).join(",\n"),
    "  ],",
    `  "entries": [`,
    entries.map((e) => `    ${JSON.stringify(e)}`).join(",\n"),
    "  ]",
    "}",
  ];
  return `${lines.join("\n")}\n`;
}
