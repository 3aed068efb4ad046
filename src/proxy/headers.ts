/** Hop-by-hop header handling (RFC 9110 §7.6.1): these never cross the proxy; bodies are re-framed. */

export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
  "http2-settings",
  // Credentials for portcullis itself (client tokens): never handed to the daemon.
  "authorization",
]);

/** Names listed in the Connection header are hop-by-hop too. */
function connectionListed(rawHeaders: readonly string[]): Set<string> | null {
  let listed: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() !== "connection") continue;
    for (const token of (rawHeaders[i + 1] as string).split(",")) {
      const t = token.trim().toLowerCase();
      if (t !== "") {
        listed ??= new Set();
        listed.add(t);
      }
    }
  }
  return listed;
}

/**
 * End-to-end request headers as a flat [name, value, ...] list. `keep` names hop-by-hop headers to
 * pass on anyway (the upgrade handshake); content-length is kept only when a body follows.
 */
export function endToEndRequestHeaders(
  rawHeaders: readonly string[],
  options: { keepContentLength: boolean; keep?: ReadonlySet<string> },
): string[] {
  const listed = connectionListed(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const lower = name.toLowerCase();
    if (options.keep?.has(lower)) {
      out.push(name, rawHeaders[i + 1] as string);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || listed?.has(lower)) continue;
    if (lower === "content-length" && !options.keepContentLength) continue;
    out.push(name, rawHeaders[i + 1] as string);
  }
  return out;
}

/** End-to-end response headers from undici's parsed object, as a flat list for `writeHead`. */
export function endToEndResponseHeaders(headers: Record<string, string | string[] | undefined>): string[] {
  const listed = new Set<string>();
  const connection = headers.connection;
  if (connection !== undefined) {
    for (const v of Array.isArray(connection) ? connection : [connection]) {
      for (const t of v.split(",")) listed.add(t.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed.has(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

export function headerValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() === lowerName) return rawHeaders[i + 1];
  }
  return undefined;
}
