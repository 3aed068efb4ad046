/**
 * The daemon's answer as the fast lane relays it: the head is checked and passed on (hop-by-hop fields
 * removed), the body is relayed byte for byte in its own framing, and the framing is followed only to
 * know where the answer ends. Anything the lane cannot follow is an error: it fails closed.
 */

export class DaemonProtocolError extends Error {}

export type Framing =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "close" };

export interface ResponseHead {
  readonly status: number;
  readonly framing: Framing;
  /** The head to send the client (raw bytes when nothing had to change). */
  readonly relayed: Buffer;
  /** The daemon will close this connection after the answer. */
  readonly daemonCloses: boolean;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "te",
  "trailer",
  "upgrade",
]);
const HEAD_END = Buffer.from("\r\n\r\n", "latin1");

/** Where the head ends in `buf` (index after the blank line), or -1. */
export function responseHeadEnd(buf: Buffer): number {
  const i = buf.indexOf(HEAD_END);
  return i < 0 ? -1 : i + 4;
}

/**
 * Parses a complete head (`buf` up to its blank line). `headRequest`: the answer to HEAD has no body.
 * `clientCloses`: the client connection closes after this answer, so the client is told so.
 */
export function parseResponseHead(buf: Buffer, headRequest: boolean, clientCloses: boolean): ResponseHead {
  const text = buf.toString("latin1", 0, buf.length - 4);
  const lines = text.split("\r\n");
  const statusLine = lines[0] as string;
  if (!/^HTTP\/1\.[01] \d{3}( |$)/.test(statusLine))
    throw new DaemonProtocolError(
      `the daemon sent a malformed status line: ${JSON.stringify(statusLine.slice(0, 80))}`,
    );
  const status = Number(statusLine.slice(9, 12));
  const http10 = statusLine.charCodeAt(7) === 0x30;
  let contentLength: number | undefined;
  let transferEncoding: string | undefined;
  let daemonCloses = http10;
  let rewrite = false;
  const listed = new Set<string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(":");
    if (colon <= 0)
      throw new DaemonProtocolError(
        `the daemon sent a malformed header line: ${JSON.stringify(line.slice(0, 80))}`,
      );
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") {
      if (!/^\d{1,15}$/.test(value))
        throw new DaemonProtocolError(`the daemon sent Content-Length ${JSON.stringify(value)}`);
      const n = Number(value);
      if (contentLength !== undefined && contentLength !== n)
        throw new DaemonProtocolError("the daemon sent two different Content-Length values");
      contentLength = n;
    } else if (name === "transfer-encoding") {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    } else if (name === "connection") {
      for (const t of value.split(",")) {
        const token = t.trim().toLowerCase();
        if (token === "close") daemonCloses = true;
        if (token !== "") listed.add(token);
      }
      rewrite = true;
    } else if (HOP_BY_HOP.has(name)) rewrite = true;
  }
  let framing: Framing;
  if (headRequest || status === 204 || status === 304 || (status >= 100 && status < 200))
    framing = { kind: "none" };
  else if (transferEncoding !== undefined) {
    // Relayed as it is: the client reads the same framing the daemon wrote.
    const codings = transferEncoding.toLowerCase().split(",");
    framing = codings[codings.length - 1]?.trim() === "chunked" ? { kind: "chunked" } : { kind: "close" };
    if (contentLength !== undefined) rewrite = true; // never both towards the client
  } else if (contentLength !== undefined) framing = { kind: "length", length: contentLength };
  else framing = { kind: "close" };
  const tellClose = clientCloses || framing.kind === "close";
  if (!rewrite && !tellClose && !http10) return { status, framing, relayed: buf, daemonCloses };
  const kept = [http10 ? `HTTP/1.1${statusLine.slice(8)}` : statusLine];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const name = line.slice(0, line.indexOf(":")).toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name)) continue;
    if (name === "content-length" && transferEncoding !== undefined) continue;
    kept.push(line);
  }
  if (tellClose) kept.push("Connection: close");
  return { status, framing, relayed: Buffer.from(`${kept.join("\r\n")}\r\n\r\n`, "latin1"), daemonCloses };
}

enum Chunk {
  Size,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  Trailer,
  TrailerLf,
}

/** Follows chunked framing across reads, to find the byte where the message ends. */
export class ChunkedScanner {
  private state = Chunk.Size;
  private size = 0;
  private sizeDigits = 0;
  private remaining = 0;
  private trailerLineLength = 0;

  /** Index in `buf` just after the end of the message, or -1 when it goes on past `buf`. */
  scan(buf: Buffer, from = 0): number {
    let i = from;
    while (i < buf.length) {
      const c = buf[i] as number;
      switch (this.state) {
        case Chunk.Size: {
          const digit = hexValue(c);
          if (digit >= 0) {
            if (++this.sizeDigits > 12)
              throw new DaemonProtocolError("the daemon sent a chunk size that is too long");
            this.size = this.size * 16 + digit;
          } else if (this.sizeDigits > 0 && (c === 0x3b || c === 0x20 || c === 0x09))
            this.state = Chunk.Extension;
          else if (this.sizeDigits > 0 && c === 0x0d) this.state = Chunk.SizeLf;
          else throw new DaemonProtocolError("the daemon sent malformed chunked framing");
          i++;
          break;
        }
        case Chunk.Extension:
          if (c === 0x0d) this.state = Chunk.SizeLf;
          else if (c === 0x0a) throw new DaemonProtocolError("the daemon sent malformed chunked framing");
          i++;
          break;
        case Chunk.SizeLf:
          if (c !== 0x0a) throw new DaemonProtocolError("the daemon sent malformed chunked framing");
          i++;
          if (this.size === 0) {
            this.state = Chunk.Trailer;
            this.trailerLineLength = 0;
          } else {
            this.remaining = this.size;
            this.state = Chunk.Data;
          }
          this.size = 0;
          this.sizeDigits = 0;
          break;
        case Chunk.Data: {
          const take = Math.min(this.remaining, buf.length - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = Chunk.DataCr;
          break;
        }
        case Chunk.DataCr:
          if (c !== 0x0d) throw new DaemonProtocolError("the daemon sent malformed chunked framing");
          this.state = Chunk.DataLf;
          i++;
          break;
        case Chunk.DataLf:
          if (c !== 0x0a) throw new DaemonProtocolError("the daemon sent malformed chunked framing");
          this.state = Chunk.Size;
          i++;
          break;
        case Chunk.Trailer:
          if (c === 0x0d) this.state = Chunk.TrailerLf;
          else if (c === 0x0a) throw new DaemonProtocolError("the daemon sent malformed chunked framing");
          else if (++this.trailerLineLength > 8192)
            throw new DaemonProtocolError("the daemon sent a trailer that is too long");
          i++;
          break;
        case Chunk.TrailerLf:
          if (c !== 0x0a) throw new DaemonProtocolError("the daemon sent malformed chunked framing");
          i++;
          if (this.trailerLineLength === 0) {
            this.state = Chunk.Size;
            return i;
          }
          this.trailerLineLength = 0;
          this.state = Chunk.Trailer;
          break;
      }
    }
    return -1;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
