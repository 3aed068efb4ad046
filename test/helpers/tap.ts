/**
 * Test helper: a byte-level tap between portcullis and a private dockerd.
 *
 * The tap listens on its own unix socket (give that path to the proxy as its upstream) and relays
 * every connection to the daemon's socket unchanged, both ways, with half-close passed on. Beside
 * the relay it reads the client -> daemon bytes with its own small HTTP/1.1 request parser and
 * records every request the daemon receives (method, request-target, headers, body length), in the
 * daemon's own sequential reading model: request N+1 is only parsed once the daemon's answer to
 * request N has begun, and if that answer turns the connection into a tunnel (101, or a hijack 200
 * with neither Content-Length nor chunked framing) the rest of the connection is counted as tunnel
 * bytes and never parsed. The parser is lenient like Go's (bare LF line ends, obs-fold), so that it
 * never counts fewer requests than the daemon would read.
 *
 *   const tap = await startTap(engine.socketPath);
 *   const proxy = await startProxy(tap.socketPath, { CONTAINERS: "1" });
 *   ... tap.requests() ...
 *   await proxy.stop(); await tap.stop();
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { header, parseHeaderLines, parseResponse, readChunked } from "./raw-http.js";

export interface Recorded {
  /** Tap connection number (1, 2, ...) and the request's index on it (0, 1, ...). */
  readonly conn: number;
  readonly seq: number;
  readonly method: string;
  /** The request-target exactly as the daemon received it (latin1, one char per byte). */
  readonly target: string;
  readonly version: string;
  readonly headers: readonly (readonly [string, string])[];
  /** Body bytes as framed (chunked framing removed); -1 while still arriving. */
  bodyLength: number;
  readonly framing: "none" | "length" | "chunked";
  /** The daemon's status for it, once seen. */
  status?: number;
  /** The daemon's answer turned the connection into a raw tunnel. */
  hijacked: boolean;
}

export interface TapConnection {
  readonly id: number;
  bytesToDaemon: number;
  bytesFromDaemon: number;
  /** Bytes that crossed after the connection became a tunnel. */
  tunnelToDaemon: number;
  tunnelFromDaemon: number;
  hijacked: boolean;
  /** Client bytes the daemon never read as a request (it closed first), when the connection ended. */
  unparsedAtClose: number;
  /** Something the tap could not parse: a test should treat it as a failure. */
  parseError?: string;
  closed: boolean;
}

export interface Tap {
  readonly socketPath: string;
  requests(): Recorded[];
  connections(): TapConnection[];
  /** Parse errors on any connection. */
  errors(): string[];
  /** Forgets what was recorded so far (connections stay relayed). */
  reset(): void;
  /** Resolves once no bytes crossed for `quietMs` (bounded by `timeoutMs`). */
  quiet(quietMs?: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const MAX_HEAD = 1024 * 1024;

interface Pending {
  readonly rec: Recorded;
}

class ConnectionParser {
  private inBuf = Buffer.alloc(0);
  private outBuf = Buffer.alloc(0);
  /** Requests whose head was parsed and whose response head has not been seen. */
  private awaiting: Pending[] = [];
  /** The request currently being read (head parsed, body not complete). */
  private body: { rec: Recorded; remaining: number } | { rec: Recorded; chunked: true } | null = null;
  /** Response currently being skipped: remaining body bytes, or chunked, or close-delimited. */
  private respBody: { remaining: number } | { chunked: true } | { close: true } | null = null;
  private seq = 0;
  private tunnel = false;
  private broken = false;

  constructor(
    readonly info: TapConnection,
    private readonly record: (r: Recorded) => void,
  ) {}

  fromClient(chunk: Buffer): void {
    this.info.bytesToDaemon += chunk.length;
    if (this.tunnel) {
      this.info.tunnelToDaemon += chunk.length;
      return;
    }
    this.inBuf = Buffer.concat([this.inBuf, chunk]);
    this.pump();
  }

  fromDaemon(chunk: Buffer): void {
    this.info.bytesFromDaemon += chunk.length;
    if (this.tunnel) {
      this.info.tunnelFromDaemon += chunk.length;
      return;
    }
    this.outBuf = Buffer.concat([this.outBuf, chunk]);
    this.pump();
  }

  closed(): void {
    this.info.closed = true;
    if (this.tunnel) return;
    this.info.unparsedAtClose = this.inBuf.length;
    if (this.outBuf.length > 0 && this.respBody === null)
      this.fail(
        `daemon sent bytes no request asked for: ${JSON.stringify(this.outBuf.subarray(0, 60).toString("latin1"))}`,
      );
  }

  private fail(message: string): void {
    if (this.broken) return;
    this.broken = true;
    this.info.parseError = message;
  }

  private pump(): void {
    for (let guard = 0; guard < 100_000 && !this.broken && !this.tunnel; guard++) {
      const answered = this.stepResponse();
      const asked = !this.tunnel && !this.broken && this.stepRequest();
      if (!answered && !asked) return;
    }
  }

  /** One step on the daemon -> client side. Returns true if progress was made. */
  private stepResponse(): boolean {
    if (this.respBody !== null) {
      const rb = this.respBody;
      if ("close" in rb) {
        this.outBuf = Buffer.alloc(0);
        return false;
      }
      if ("remaining" in rb) {
        if (this.outBuf.length === 0) return false;
        const take = Math.min(rb.remaining, this.outBuf.length);
        this.outBuf = this.outBuf.subarray(take);
        rb.remaining -= take;
        if (rb.remaining === 0) this.respBody = null;
        return true;
      }
      const r = readChunked(this.outBuf, 0);
      if (r === "incomplete") return false;
      if (typeof r === "string") {
        this.fail(`daemon response: ${r}`);
        return false;
      }
      this.outBuf = this.outBuf.subarray(r.end);
      this.respBody = null;
      return true;
    }
    if (this.outBuf.length === 0) return false;
    const req = this.awaiting[0];
    // (the request it answers may still be waiting in inBuf for its turn: see stepRequest)
    if (req === undefined) return false;
    const r = parseResponse(this.outBuf, { stream: true });
    if (r.kind === "incomplete") return false;
    if (r.kind === "error") {
      this.fail(`daemon response: ${r.error}`);
      return false;
    }
    const res = r.response;
    this.outBuf = this.outBuf.subarray(r.consumed);
    if (res.status >= 100 && res.status < 200 && res.status !== 101) return true; // interim
    this.awaiting.shift();
    req.rec.status = res.status;
    const te = header(res, "transfer-encoding");
    const cl = header(res, "content-length");
    const noBody = req.rec.method === "HEAD" || res.status === 204 || res.status === 304;
    if (res.status === 101 || (!noBody && te === undefined && cl === undefined)) {
      // 101, or a body delimited by the close (dockerd's raw hijack 200 and its raw error answers):
      // the daemon reads no further request on this connection.
      req.rec.hijacked = true;
      this.info.hijacked = true;
      this.tunnel = true;
      const pendingIn = this.requestBytesPending();
      this.info.tunnelToDaemon += pendingIn;
      this.info.tunnelFromDaemon += this.outBuf.length;
      this.inBuf = Buffer.alloc(0);
      this.outBuf = Buffer.alloc(0);
      return false;
    }
    if (noBody) return true;
    if (te !== undefined) {
      if (!/(^|,)\s*chunked\s*$/i.test(te)) {
        this.respBody = { close: true };
        return true;
      }
      this.respBody = { chunked: true };
      return true;
    }
    const n = Number(cl);
    this.respBody = n > 0 ? { remaining: n } : null;
    return true;
  }

  /** Client bytes not yet consumed by a request head/body the daemon has read. */
  private requestBytesPending(): number {
    return this.inBuf.length;
  }

  /** One step on the client -> daemon side. Returns true if progress was made. */
  private stepRequest(): boolean {
    if (this.body !== null) {
      const b = this.body;
      if ("remaining" in b) {
        if (b.remaining > 0 && this.inBuf.length === 0) return false;
        const take = Math.min(b.remaining, this.inBuf.length);
        this.inBuf = this.inBuf.subarray(take);
        b.remaining -= take;
        b.rec.bodyLength += take;
        if (b.remaining === 0) this.body = null;
        return take > 0 || this.body === null;
      }
      const r = readChunked(this.inBuf, 0);
      if (r === "incomplete") return false;
      if (typeof r === "string") {
        this.fail(`request body: ${r}`);
        return false;
      }
      b.rec.bodyLength = r.body.length;
      this.inBuf = this.inBuf.subarray(r.end);
      this.body = null;
      return true;
    }
    // Sequential model: the daemon reads the next request only after answering this one.
    if (this.awaiting.length > 0 || this.respBody !== null) return false;
    if (this.inBuf.length === 0) return false;
    // Go skips empty lines before a request line.
    let start = 0;
    while (this.inBuf[start] === 0x0d || this.inBuf[start] === 0x0a) start++;
    const buf = this.inBuf.subarray(start);
    let end = -1;
    let sep = 0;
    for (let i = 0; i < buf.length; i++) {
      if (buf[i] !== 0x0a) continue;
      if (buf[i + 1] === 0x0a) {
        end = i;
        sep = 2;
        break;
      }
      if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) {
        end = i;
        sep = 3;
        break;
      }
    }
    if (end === -1) {
      if (buf.length > MAX_HEAD) this.fail("request head larger than 1 MiB");
      return false;
    }
    const lines = buf
      .subarray(0, end)
      .toString("latin1")
      .split("\n")
      .map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
    const line = /^(\S+) (\S+) (HTTP\/\d\.\d)$/.exec(lines[0] ?? "");
    if (line === null) {
      this.fail(`bad request line ${JSON.stringify(lines[0])}`);
      return false;
    }
    const headers = parseHeaderLines(lines.slice(1));
    if (headers === null) {
      this.fail("bad request header line");
      return false;
    }
    this.inBuf = buf.subarray(end + sep);
    const te = header({ headers }, "transfer-encoding");
    const cls = headers.filter(([n]) => n.toLowerCase() === "content-length").map(([, v]) => v.trim());
    let framing: Recorded["framing"] = "none";
    let length = 0;
    if (te !== undefined) {
      if (te.trim().toLowerCase() !== "chunked") this.fail(`request Transfer-Encoding ${JSON.stringify(te)}`);
      framing = "chunked";
    } else if (cls.length > 0) {
      if (new Set(cls).size > 1 || !/^[0-9]+$/.test(cls[0] as string))
        this.fail(`request Content-Length ${JSON.stringify(cls)}`);
      length = Number(cls[0]);
      framing = "length";
    }
    const rec: Recorded = {
      conn: this.info.id,
      seq: this.seq++,
      method: line[1] as string,
      target: line[2] as string,
      version: line[3] as string,
      headers,
      bodyLength: framing === "none" ? 0 : framing === "length" && length === 0 ? 0 : -1,
      framing,
      hijacked: false,
    };
    if (framing === "chunked") this.body = { rec, chunked: true };
    else if (framing === "length" && length > 0) {
      rec.bodyLength = 0;
      this.body = { rec, remaining: length };
    }
    this.awaiting.push({ rec });
    this.record(rec);
    return true;
  }
}

export async function startTap(daemonSocket: string): Promise<Tap> {
  const dir = mkdtempSync(join(tmpdir(), "pctap-"));
  const socketPath = join(dir, "tap.sock");
  let recorded: Recorded[] = [];
  let conns: ConnectionParser[] = [];
  let nextId = 1;
  let lastActivity = Date.now();
  const live = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const info: TapConnection = {
      id: nextId++,
      bytesToDaemon: 0,
      bytesFromDaemon: 0,
      tunnelToDaemon: 0,
      tunnelFromDaemon: 0,
      hijacked: false,
      unparsedAtClose: 0,
      closed: false,
    };
    const parser = new ConnectionParser(info, (r) => recorded.push(r));
    conns.push(parser);
    const daemon = net.connect({ path: daemonSocket, allowHalfOpen: true });
    live.add(client);
    live.add(daemon);
    client.pause();
    daemon.once("connect", () => client.resume());
    client.on("data", (d: Buffer) => {
      lastActivity = Date.now();
      parser.fromClient(d);
      if (!daemon.write(d)) {
        client.pause();
        daemon.once("drain", () => client.resume());
      }
    });
    daemon.on("data", (d: Buffer) => {
      lastActivity = Date.now();
      parser.fromDaemon(d);
      if (!client.write(d)) {
        daemon.pause();
        client.once("drain", () => daemon.resume());
      }
    });
    // Half-close passes through: a FIN from one side becomes end() on the other.
    client.on("end", () => daemon.end());
    daemon.on("end", () => client.end());
    let open = 2;
    const closed = () => {
      if (--open === 0) parser.closed();
    };
    client.on("close", () => {
      live.delete(client);
      daemon.destroy();
      closed();
    });
    daemon.on("close", () => {
      live.delete(daemon);
      client.destroy();
      closed();
    });
    client.on("error", () => daemon.destroy());
    daemon.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });

  return {
    socketPath,
    requests: () => [...recorded],
    connections: () => conns.map((c) => c.info),
    errors: () =>
      conns.flatMap((c) => (c.info.parseError ? [`conn ${c.info.id}: ${c.info.parseError}`] : [])),
    reset() {
      recorded = [];
      conns = conns.filter((c) => !c.info.closed);
    },
    async quiet(quietMs = 100, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline && Date.now() - lastActivity < quietMs) {
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      for (const s of live) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/* ------------------------------------------------------------------ the invariant */

export interface LogRecord {
  readonly decision?: unknown;
  readonly method?: unknown;
  readonly target?: unknown;
  readonly operation?: unknown;
  readonly status?: unknown;
  readonly reason?: unknown;
}

/** `METHOD target` of every request the proxy logged as allowed. */
export function allowedByProxy(logs: readonly LogRecord[]): string[] {
  return logs.filter((l) => l.decision === "allow").map((l) => `${String(l.method)} ${String(l.target)}`);
}

/** `METHOD target` of every request the daemon received through the tap. */
export function seenByDaemon(tap: Pick<Tap, "requests">): string[] {
  return tap.requests().map((r) => `${r.method} ${r.target}`);
}

/**
 * The hostile-input invariant: every request the daemon received is one the proxy allowed, byte for
 * byte in method and request-target (compared as multisets: connections interleave), and every
 * allowed request reached the daemon unless its exchange broke first (the log says `error`, or
 * status 499: the client went away or sent a body the parser then rejected). The tap must have
 * parsed everything it relayed. `expected`, when given, is exactly what the daemon must have seen.
 */
export async function assertOnlyAllowedReachedDaemon(
  tap: Tap,
  logs: readonly LogRecord[],
  expected?: readonly string[],
  context = "",
): Promise<void> {
  await tap.quiet(60, 3_000);
  assert.deepEqual(tap.errors(), [], `${context} tap parse errors`);
  const seen = seenByDaemon(tap);
  let unmatched: string[] = [];
  let notSeen: LogRecord[] = [];
  // An allowed request is logged when its exchange ends: give late records a moment.
  for (let wait = 0; wait < 40; wait++) {
    unmatched = [...seen];
    notSeen = [];
    for (const l of logs.filter((r) => r.decision === "allow")) {
      const i = unmatched.indexOf(`${String(l.method)} ${String(l.target)}`);
      if (i === -1) notSeen.push(l);
      else unmatched.splice(i, 1);
    }
    if (unmatched.length === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(unmatched, [], `${context} the daemon received requests the proxy never allowed`);
  const broken = (l: LogRecord) => (l as { error?: unknown }).error !== undefined || l.status === 499;
  assert.deepEqual(
    notSeen.filter((l) => !broken(l)).map((l) => `${String(l.method)} ${String(l.target)}`),
    [],
    `${context} allowed but never reached the daemon`,
  );
  if (expected !== undefined)
    assert.deepEqual([...seen].sort(), [...expected].sort(), `${context} daemon saw ≠ expected`);
}

/** Waits until the proxy has logged `n` decisions more than `from` (allow logs come when the exchange ends). */
export async function waitForDecisions(
  logs: readonly LogRecord[],
  count: number,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (logs.filter((l) => l.decision === "allow" || l.decision === "deny").length >= count) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
