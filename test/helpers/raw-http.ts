/**
 * Test helper: HTTP/1.x over raw sockets, for hostile-input tests. Sends exact bytes (nothing is
 * normalized, validated or re-framed) and parses what comes back with a small, lenient response
 * parser of its own, so a test can see every response, every byte after them, and whether and when
 * the peer closed the connection.
 *
 *   const ex = await rawExchange({ port }, "GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n", { responses: 1 });
 *   ex.responses[0].status === 200
 *
 *   const c = await RawConnection.open({ path: socketPath });
 *   c.write(bytes); const head = await c.readResponse({ stream: true }); ... c.end(); await c.closed;
 *
 * Only loopback TCP and unix sockets are used; every wait is bounded by a timeout.
 */
import net from "node:net";

export type RawTarget = { readonly port: number; readonly host?: string } | { readonly path: string };
export type Bytes = string | Buffer | readonly (string | Buffer)[];

/** Strings are sent as latin1: each char code 0-255 is exactly one byte on the wire. */
export function toBytes(b: Bytes): Buffer {
  if (typeof b === "string") return Buffer.from(b, "latin1");
  if (Buffer.isBuffer(b)) return b;
  return Buffer.concat((b as readonly (string | Buffer)[]).map((x) => toBytes(x)));
}

export interface RawResponse {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  /** Header fields in wire order, names as sent. */
  readonly headers: readonly (readonly [string, string])[];
  /** Decoded body (chunked framing removed). Empty for head-only reads. */
  readonly body: Buffer;
  readonly framing: "none" | "length" | "chunked" | "close" | "stream";
  /** Bytes of the head (status line to blank line). */
  readonly headLength: number;
}

export function header(r: Pick<RawResponse, "headers">, name: string): string | undefined {
  const lower = name.toLowerCase();
  return r.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
}

/** `{"message": ...}` of a JSON error body, else the body as text. */
export function messageOf(r: RawResponse): string {
  const text = r.body.toString("utf8");
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    /* not JSON */
  }
  return text;
}

export interface ParseOptions {
  /** The request was HEAD: the response has no body whatever its headers say. */
  readonly head?: boolean;
  /** Return after the head and leave the body (or tunnel bytes) unread: for 101, hijack 200, streams. */
  readonly stream?: boolean;
  /** The peer has closed: a close-delimited body is complete. */
  readonly closed?: boolean;
}

export type ParseResult =
  | { readonly kind: "response"; readonly response: RawResponse; readonly consumed: number }
  | { readonly kind: "incomplete" }
  | { readonly kind: "error"; readonly error: string };

function findHeadEnd(buf: Buffer): { end: number; sep: number } | null {
  // Lenient like Go's textproto reader: a bare LF ends a line too.
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue;
    if (buf[i + 1] === 0x0a) return { end: i, sep: 2 };
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return { end: i, sep: 3 };
  }
  return null;
}

function splitLines(text: string): string[] {
  return text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

/** Parses header lines (obs-fold joined). Returns null on a line without a colon. */
export function parseHeaderLines(lines: readonly string[]): [string, string][] | null {
  const out: [string, string][] = [];
  for (const line of lines) {
    if (line === "") continue;
    if ((line[0] === " " || line[0] === "\t") && out.length > 0) {
      const last = out[out.length - 1] as [string, string];
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) return null;
    out.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return out;
}

/**
 * Chunked body starting at `from`: returns the decoded body and the index just after the trailer
 * section, "incomplete", or an error string.
 */
export function readChunked(
  buf: Buffer,
  from: number,
): { body: Buffer; end: number } | "incomplete" | string {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const nl = buf.indexOf(0x0a, at);
    if (nl === -1) return "incomplete";
    const line = buf.subarray(at, nl).toString("latin1").replace(/\r$/, "");
    const sizeText = (line.split(";")[0] as string).trim();
    if (!/^[0-9a-fA-F]{1,15}$/.test(sizeText)) return `bad chunk size line ${JSON.stringify(line)}`;
    const size = Number.parseInt(sizeText, 16);
    at = nl + 1;
    if (size === 0) {
      // trailer section: lines until an empty one
      for (;;) {
        const tnl = buf.indexOf(0x0a, at);
        if (tnl === -1) return "incomplete";
        const tline = buf.subarray(at, tnl).toString("latin1").replace(/\r$/, "");
        at = tnl + 1;
        if (tline === "") return { body: Buffer.concat(parts), end: at };
      }
    }
    if (buf.length < at + size) return "incomplete";
    parts.push(buf.subarray(at, at + size));
    at += size;
    if (buf[at] === 0x0d && buf[at + 1] === 0x0a) at += 2;
    else if (buf[at] === 0x0a) at += 1;
    else if (at >= buf.length || (at + 1 >= buf.length && buf[at] === 0x0d)) return "incomplete";
    else return "missing CRLF after chunk data";
  }
}

/** Parses one response at the start of `buf`. */
export function parseResponse(buf: Buffer, opts: ParseOptions = {}): ParseResult {
  const found = findHeadEnd(buf);
  if (found === null) {
    if (buf.length > 0 && !/^HTTP\/?/.test(buf.subarray(0, 5).toString("latin1")) && buf.length >= 5)
      return {
        kind: "error",
        error: `not an HTTP response: ${JSON.stringify(buf.subarray(0, 40).toString("latin1"))}`,
      };
    return { kind: "incomplete" };
  }
  const headLength = found.end + found.sep;
  const lines = splitLines(buf.subarray(0, found.end).toString("latin1"));
  const statusLine = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
  if (statusLine === null) return { kind: "error", error: `bad status line ${JSON.stringify(lines[0])}` };
  const headers = parseHeaderLines(lines.slice(1));
  if (headers === null) return { kind: "error", error: "bad header line" };
  const status = Number(statusLine[2]);
  const base = {
    version: statusLine[1] as string,
    status,
    reason: statusLine[3] ?? "",
    headers,
    headLength,
  };
  const te = header({ headers }, "transfer-encoding");
  const cl = header({ headers }, "content-length");
  if (opts.head || (status >= 100 && status < 200) || status === 204 || status === 304) {
    return {
      kind: "response",
      response: { ...base, body: Buffer.alloc(0), framing: "none" },
      consumed: headLength,
    };
  }
  if (opts.stream) {
    return {
      kind: "response",
      response: { ...base, body: Buffer.alloc(0), framing: "stream" },
      consumed: headLength,
    };
  }
  if (te !== undefined && /chunked/i.test(te)) {
    const r = readChunked(buf, headLength);
    if (r === "incomplete") return { kind: "incomplete" };
    if (typeof r === "string") return { kind: "error", error: r };
    return { kind: "response", response: { ...base, body: r.body, framing: "chunked" }, consumed: r.end };
  }
  if (cl !== undefined) {
    const n = Number(cl);
    if (!Number.isSafeInteger(n) || n < 0) return { kind: "error", error: `bad Content-Length ${cl}` };
    if (buf.length < headLength + n) return { kind: "incomplete" };
    return {
      kind: "response",
      response: { ...base, body: buf.subarray(headLength, headLength + n), framing: "length" },
      consumed: headLength + n,
    };
  }
  if (!opts.closed) return { kind: "incomplete" };
  return {
    kind: "response",
    response: { ...base, body: buf.subarray(headLength), framing: "close" },
    consumed: buf.length,
  };
}

export interface ExchangeOptions {
  /** Stop once this many (final, non-1xx) responses have been parsed, after `settleMs`. */
  readonly responses?: number;
  /** After the expected responses: how long to keep reading to see extra bytes or the close. Default 150 ms. */
  readonly settleMs?: number;
  /** Overall bound. Default 5 s. */
  readonly timeoutMs?: number;
  /** Once a response head has arrived, stop after this long even if the body is still coming (streams). */
  readonly headGraceMs?: number;
  /** Method of each request in order (only HEAD matters: its response has no body). */
  readonly methods?: readonly string[];
  /** Half-close our side after writing. */
  readonly end?: boolean;
  /** Send the bytes in these pieces, `gapMs` apart (default: all at once). */
  readonly pieces?: readonly Bytes[];
  readonly gapMs?: number;
}

export interface RawExchange {
  /** Every parsed response, interim 1xx included, in order. */
  readonly responses: RawResponse[];
  /** Final (non-1xx) responses only. */
  readonly finals: RawResponse[];
  /** Bytes left after the parsed responses. */
  readonly rest: Buffer;
  readonly raw: Buffer;
  /** The peer closed (or reset) the connection before we stopped reading. */
  readonly closed: boolean;
  readonly timedOut: boolean;
  readonly parseError?: string;
  readonly socketError?: string;
}

function connectRaw(target: RawTarget): net.Socket {
  return "path" in target
    ? net.connect({ path: target.path, allowHalfOpen: true })
    : net.connect({ host: target.host ?? "127.0.0.1", port: target.port, allowHalfOpen: true });
}

/** Parses as many responses as `buf` holds. */
export function parseResponses(
  buf: Buffer,
  closed: boolean,
  methods: readonly string[] = [],
): { responses: RawResponse[]; rest: Buffer; error?: string } {
  const responses: RawResponse[] = [];
  let at = 0;
  let finals = 0;
  for (;;) {
    if (at >= buf.length) break;
    const r = parseResponse(buf.subarray(at), { head: methods[finals] === "HEAD", closed });
    if (r.kind === "incomplete") break;
    if (r.kind === "error") return { responses, rest: buf.subarray(at), error: r.error };
    responses.push(r.response);
    at += r.consumed;
    if (r.response.status >= 200 || r.response.status < 100) finals++;
    // after a 101 the bytes are not HTTP any more
    if (r.response.status === 101) break;
  }
  return { responses, rest: buf.subarray(at) };
}

/** Opens a connection, writes `bytes` exactly, reads until close, timeout or the expected responses. */
export function rawExchange(
  target: RawTarget,
  bytes: Bytes,
  opts: ExchangeOptions = {},
): Promise<RawExchange> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const settleMs = opts.settleMs ?? 150;
  return new Promise((resolve) => {
    const socket = connectRaw(target);
    let buf = Buffer.alloc(0);
    let closed = false;
    let socketError: string | undefined;
    let done = false;
    let settleTimer: NodeJS.Timeout | undefined;
    const timers: NodeJS.Timeout[] = [];
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      if (settleTimer) clearTimeout(settleTimer);
      socket.destroy();
      const parsed = parseResponses(buf, closed, opts.methods);
      resolve({
        responses: parsed.responses,
        finals: parsed.responses.filter((r) => r.status >= 200),
        rest: parsed.rest,
        raw: buf,
        closed,
        timedOut,
        ...(parsed.error ? { parseError: parsed.error } : {}),
        ...(socketError ? { socketError } : {}),
      });
    };
    let headTimer: NodeJS.Timeout | undefined;
    const check = () => {
      if (opts.headGraceMs !== undefined && !headTimer && /\r?\n\r?\n/.test(buf.toString("latin1"))) {
        headTimer = setTimeout(() => finish(false), opts.headGraceMs);
        timers.push(headTimer);
      }
      if (opts.responses === undefined || settleTimer) return;
      const parsed = parseResponses(buf, closed, opts.methods);
      if (parsed.responses.filter((r) => r.status >= 200).length >= opts.responses) {
        settleTimer = setTimeout(() => finish(false), settleMs);
      }
    };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      check();
    });
    socket.on("end", () => {
      closed = true;
      finish(false);
    });
    socket.on("close", () => {
      closed = true;
      finish(false);
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      socketError = e.code ?? e.message;
    });
    timers.push(setTimeout(() => finish(true), timeoutMs));
    socket.once("connect", () => {
      const pieces = opts.pieces ?? [bytes];
      const gap = opts.gapMs ?? 20;
      pieces.forEach((p, i) => {
        const send = () => {
          if (done || socket.destroyed) return;
          socket.write(toBytes(p));
          if (i === pieces.length - 1 && opts.end) socket.end();
        };
        if (i === 0) send();
        else timers.push(setTimeout(send, gap * i));
      });
    });
  });
}

/** A long-lived raw connection: write bytes, read responses or raw tunnel bytes, half-close. */
export class RawConnection {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private ended = false;
  /** The peer closed its side (FIN) or the socket is gone. */
  peerEnded = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on("end", () => {
      this.peerEnded = true;
      this.wake();
    });
    socket.on("error", () => {
      this.peerEnded = true;
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.peerEnded = true;
        this.wake();
        resolve();
      }),
    );
  }

  static open(target: RawTarget, timeoutMs = 5_000): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connectRaw(target);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error("connect timed out"));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(new RawConnection(socket));
      });
      socket.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async waitUntil<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; have ${JSON.stringify(this.buf.subarray(0, 200).toString("latin1"))}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  write(bytes: Bytes): void {
    this.socket.write(toBytes(bytes));
  }

  /** Half-close: send FIN, keep reading. */
  end(): void {
    if (!this.ended) {
      this.ended = true;
      this.socket.end();
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Bytes received and not consumed yet. */
  get pending(): Buffer {
    return this.buf;
  }

  /** Next response. With `stream`, only its head is consumed and the rest stays readable. */
  readResponse(opts: { head?: boolean; stream?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    return this.waitUntil(
      () => {
        const r = parseResponse(this.buf, { head: opts.head, stream: opts.stream, closed: this.peerEnded });
        if (r.kind === "error") throw new Error(r.error);
        if (r.kind === "incomplete") {
          if (this.peerEnded)
            throw new Error(
              `connection closed before a complete response; have ${JSON.stringify(this.buf.toString("latin1"))}`,
            );
          return undefined;
        }
        this.buf = this.buf.subarray(r.consumed);
        return r.response;
      },
      opts.timeoutMs ?? 5_000,
      "a response",
    );
  }

  /** Reads raw bytes until `until` holds for what was received (or `n` bytes), consuming them. */
  readBytes(until: number | ((b: Buffer) => boolean), timeoutMs = 5_000): Promise<Buffer> {
    const ok = typeof until === "number" ? (b: Buffer) => b.length >= until : until;
    return this.waitUntil(
      () => {
        if (ok(this.buf)) {
          const out = this.buf;
          this.buf = Buffer.alloc(0);
          return out;
        }
        if (this.peerEnded)
          throw new Error(`connection closed; have ${JSON.stringify(this.buf.toString("latin1"))}`);
        return undefined;
      },
      timeoutMs,
      "bytes",
    );
  }

  /** Everything until the peer closes its side. */
  async readToEnd(timeoutMs = 5_000): Promise<Buffer> {
    await this.waitUntil(() => (this.peerEnded ? true : undefined), timeoutMs, "the peer to close");
    const out = this.buf;
    this.buf = Buffer.alloc(0);
    return out;
  }

  /** Resolves true if the peer closed within `ms`, false if it is still open. */
  async closesWithin(ms: number): Promise<boolean> {
    try {
      await this.waitUntil(() => (this.peerEnded ? true : undefined), ms, "close");
      return true;
    } catch {
      return false;
    }
  }
}

/** Docker's stdin/stdout multiplexing: frames `[stream,0,0,0,size BE32]` + payload. */
export function demux(buf: Buffer): { stdout: string; stderr: string; rest: Buffer } {
  let stdout = "";
  let stderr = "";
  let at = 0;
  while (at + 8 <= buf.length) {
    const size = buf.readUInt32BE(at + 4);
    if (at + 8 + size > buf.length) break;
    const payload = buf.subarray(at + 8, at + 8 + size).toString("utf8");
    if (buf[at] === 2) stderr += payload;
    else stdout += payload;
    at += 8 + size;
  }
  return { stdout, stderr, rest: buf.subarray(at) };
}

/** A minimal HTTP/1.1 request as bytes. `headers` in order; Host is added unless given. */
export function httpRequest(
  method: string,
  target: string | Buffer,
  headers: readonly (readonly [string, string])[] = [],
  body?: string | Buffer,
): Buffer {
  const hasHost = headers.some(([n]) => n.toLowerCase() === "host");
  let head = "";
  if (!hasHost) head += "Host: portcullis.test\r\n";
  for (const [n, v] of headers) head += `${n}: ${v}\r\n`;
  if (body !== undefined && !headers.some(([n]) => /^(content-length|transfer-encoding)$/i.test(n)))
    head += `Content-Length: ${toBytes(body).length}\r\n`;
  return Buffer.concat([
    toBytes(`${method} `),
    toBytes(target),
    toBytes(` HTTP/1.1\r\n${head}\r\n`),
    body === undefined ? Buffer.alloc(0) : toBytes(body),
  ]);
}
