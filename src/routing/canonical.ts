/**
 * The request target read exactly as dockerd's router reads it: Go's single percent-decode of the
 * path, gorilla/mux's clean-path redirect rule, the optional `/v{version:[0-9.]+}` prefix.
 * Targets dockerd would not route to a handler are refused here, before any policy runs.
 */

export interface CanonicalTarget {
  /** Percent-decoded path, as dockerd matches routes against it. */
  readonly path: string;
  /** Path without the version prefix: what route patterns are matched against. */
  readonly routePath: string;
  /** The version prefix's digits and dots ("1.41"), or null when the target has no prefix. */
  readonly version: string | null;
  /** Raw query string without the `?` (never used for routing). */
  readonly query: string;
}

export type TargetRefusal = { readonly ok: false; readonly reason: string };
export type TargetResult = ({ readonly ok: true } & CanonicalTarget) | TargetRefusal;

const VERSION_PREFIX = /^\/v([0-9.]+)(?=\/)/;

/** Parses a raw request-target (`req.url`) into what dockerd routes on, or says why it must be refused. */
export function canonicalTarget(rawTarget: string): TargetResult {
  if (rawTarget.length === 0 || rawTarget.charCodeAt(0) !== 0x2f /* "/" */) {
    return refuse(
      rawTarget === "*"
        ? "the asterisk-form target `*` is not a Docker API route"
        : "only origin-form request targets (starting with `/`) are accepted; absolute-form and authority-form targets are refused",
    );
  }
  const queryAt = rawTarget.indexOf("?");
  const rawPath = queryAt === -1 ? rawTarget : rawTarget.slice(0, queryAt);
  const query = queryAt === -1 ? "" : rawTarget.slice(queryAt + 1);

  const path = rawPath.includes("%") ? goPathUnescape(rawPath) : rawPath;
  if (path === null) return refuse("the path has a malformed percent-escape");
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return refuse("the path contains a control character");
  }
  const clean = muxCleanPath(path);
  if (clean !== path) {
    return refuse(`the path is not canonical (dockerd would only redirect it to ${JSON.stringify(clean)})`);
  }
  const prefix = VERSION_PREFIX.exec(path);
  const version = prefix ? (prefix[1] as string) : null;
  const routePath = prefix ? path.slice(prefix[0].length) : path;
  return { ok: true, path, routePath, version, query };
}

function refuse(reason: string): TargetRefusal {
  return { ok: false, reason };
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/**
 * Go's `url.PathUnescape` (one round): every `%XX` becomes its byte, `+` stays `+`, a malformed
 * escape is an error. Decoded bytes are read as UTF-8 like Go strings; invalid UTF-8 is refused.
 */
export function goPathUnescape(raw: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return null;
      bytes.push(hi * 16 + lo);
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      for (const b of Buffer.from(raw[i] as string, "utf8")) bytes.push(b);
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

/** gorilla/mux `cleanPath`: Go's `path.Clean`, keeping a trailing slash. */
export function muxCleanPath(p: string): string {
  if (p === "") return "/";
  const withSlash = p[0] === "/" ? p : `/${p}`;
  let np = goPathClean(withSlash);
  if (withSlash.length > 1 && withSlash.endsWith("/") && np !== "/") np += "/";
  return np;
}

/** Go's `path.Clean` for a rooted path: fold `//`, drop `.`, resolve `..` lexically. */
export function goPathClean(p: string): string {
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return `/${out.join("/")}`;
}

/**
 * Go's `versions.Compare` as dockerd uses it: dot-separated pieces compared as integers, an
 * unparsable piece counting as 0. Returns -1, 0 or 1.
 */
export function compareApiVersions(a: string, b: string): number {
  const pa = a.split(".");
  const pb = b.split(".");
  const n = Math.max(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const x = atoiOrZero(pa[i]);
    const y = atoiOrZero(pb[i]);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function atoiOrZero(s: string | undefined): number {
  if (s === undefined || !/^[+-]?[0-9]+$/.test(s)) return 0;
  const n = Number.parseInt(s, 10);
  return Number.isSafeInteger(n) ? n : 0;
}
