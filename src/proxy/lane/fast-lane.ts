/**
 * The fast lane: a client connection starts here. Plain allowed requests (a canonical head, at most a
 * Content-Length body, no view, no body rules, no hijack) are relayed byte for byte over a keep-alive
 * daemon connection, with the same gate and the same decision records as everywhere else. The first
 * request that is anything else (a chunked body, an upgrade, a denial, odd framing, a partial head)
 * hands the connection, with every byte not yet handled, to Node's HTTP server for the rest of its life.
 */
import type { Socket } from "node:net";
import type { Observer } from "../../observe/observer.js";
import { type ByteLedger, clientContext, type Exchange, exchange, observe } from "../exchange.js";
import { describeError } from "../forward.js";
import type { Gate, GateResult } from "../gate.js";
import { rawErrorResponse } from "../respond.js";
import type { DaemonConnection, DaemonExchange, DaemonPool } from "./daemon-pool.js";
import { type HeadLimits, parseSimpleHead, type SimpleHead } from "./request-head.js";
import {
  ChunkedScanner,
  DaemonProtocolError,
  parseResponseHead,
  type ResponseHead,
  responseHeadEnd,
} from "./response.js";

export interface LaneDeps {
  readonly listener: string;
  readonly gate: Gate;
  readonly observer: Observer;
  readonly pool: DaemonPool;
  /** For messages: where the daemon is. */
  readonly daemon: string;
  /** Host header for requests that came without one (as the Node path's client sends). */
  readonly hostHeader: string;
  /** Ends every kept-open answer head: `Connection: keep-alive`, `Keep-Alive: timeout=N`, blank line. */
  readonly keepAliveTail: Buffer;
  readonly limits: HeadLimits & { readonly headersTimeoutMs: number; readonly keepAliveTimeoutMs: number };
  readonly counted: ByteLedger;
  readonly state: LaneState;
  /** Gives the connection, with the bytes read but not handled yet, to Node's HTTP server. */
  handOver(socket: Socket, unread: Buffer | null): void;
  /** A new connection sent nothing in time: answered as Node answers its own request timeout. */
  headTimeout(socket: Socket): void;
}

/** Shared by a listener's lane connections: shutdown ends the idle ones and every one after its exchange. */
export interface LaneState {
  closing: boolean;
  readonly idle: Set<LaneConnection>;
}

/** A daemon answer head larger than this is refused (dockerd's are a few hundred bytes). */
const MAX_RESPONSE_HEAD = 64 * 1024;

export class LaneConnection {
  private buffered: Buffer | null = null;
  private current: LaneExchange | null = null;
  private served = 0;
  private clientEnded = false;
  private retired = false;

  constructor(
    readonly socket: Socket,
    private readonly deps: LaneDeps,
  ) {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("error", this.onClose);
    socket.on("close", this.onClose);
    socket.on("timeout", this.onTimeout);
    socket.setTimeout(deps.limits.headersTimeoutMs);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.current !== null && this.current.bodyRemaining > 0) {
      this.feedBody(chunk);
      return;
    }
    this.buffered = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    // Pipelined behind an exchange in flight: held (and reading paused) until that exchange is over.
    if (this.current !== null) this.socket.pause();
    else this.next();
  };

  private readonly onEnd = (): void => {
    this.clientEnded = true;
    if (this.retired) return;
    if (this.current === null) this.socket.end();
    // A client that hangs up on a stream (events, logs -f) or mid-body is gone; a plain answer is finished first.
    else if (this.current.streaming || this.current.bodyRemaining > 0) {
      this.current.clientGone();
      this.retire();
      this.socket.end();
    }
  };

  private readonly onClose = (): void => {
    this.deps.state.idle.delete(this);
    this.current?.clientGone();
  };

  private readonly onTimeout = (): void => {
    if (this.current !== null || this.retired) return;
    if (this.served === 0) {
      this.retire();
      this.deps.headTimeout(this.socket);
    } else this.socket.destroy(); // idle keep-alive connection (PORTCULLIS_KEEPALIVE_TIMEOUT_MS)
  };

  /** Handles the next buffered request, or waits for one. */
  private next(): void {
    const buf = this.buffered;
    if (buf === null || this.retired) return;
    const parsed = parseSimpleHead(buf, this.deps.limits);
    if (parsed.kind !== "head") {
      this.handOver();
      return;
    }
    const head = parsed.head;
    const { gate, listener, counted } = this.deps;
    const result = gate.check(
      head.method,
      head.target,
      clientContext(listener, this.socket, head.authorization),
      head.contentType,
    );
    if (!relaysItself(result)) {
      this.handOver();
      return;
    }
    this.buffered = buf.length > head.length ? buf.subarray(head.length) : null;
    this.socket.setTimeout(0);
    this.deps.state.idle.delete(this);
    const ex = exchange(listener, this.socket, head.method, head.target, counted);
    this.current = new LaneExchange(this, this.deps, head, result, ex);
    this.current.start();
    if (head.bodyLength > 0 && this.buffered !== null) {
      const body = this.buffered;
      this.buffered = null;
      this.feedBody(body);
    }
  }

  /** Passes request body bytes to the exchange; what follows the body waits as the next request. */
  private feedBody(chunk: Buffer): void {
    const current = this.current as LaneExchange;
    const take = Math.min(current.bodyRemaining, chunk.length);
    current.sendBody(take === chunk.length ? chunk : chunk.subarray(0, take));
    if (take < chunk.length) {
      const rest = chunk.subarray(take);
      this.buffered = this.buffered === null ? rest : Buffer.concat([this.buffered, rest]);
      this.socket.pause();
    }
  }

  /** The exchange is over; `close`: this connection ends with it. */
  exchangeDone(close: boolean): void {
    this.current = null;
    this.served++;
    if (this.socket.destroyed) return;
    if (close || this.deps.state.closing || (this.clientEnded && this.buffered === null)) {
      this.retire();
      this.socket.end();
      return;
    }
    this.socket.resume();
    if (this.buffered !== null) {
      this.next();
      return;
    }
    // As Node does: closed a second after the advertised `Keep-Alive: timeout=`, so that clients close first.
    if (this.deps.limits.keepAliveTimeoutMs > 0)
      this.socket.setTimeout(this.deps.limits.keepAliveTimeoutMs + 1000);
    this.deps.state.idle.add(this);
  }

  /** Ends an idle connection at shutdown. */
  endIdle(): void {
    if (this.current !== null) return;
    this.retire();
    this.socket.end();
  }

  private retire(): void {
    this.retired = true;
    this.deps.state.idle.delete(this);
    this.socket.off("data", this.onData);
    this.socket.off("end", this.onEnd);
    this.socket.off("timeout", this.onTimeout);
    this.socket.setTimeout(0);
  }

  private handOver(): void {
    this.retire();
    this.socket.off("error", this.onClose);
    this.socket.off("close", this.onClose);
    const unread = this.buffered;
    this.buffered = null;
    // The Node path counts an exchange's bytes from the last one counted: start at the unread bytes.
    this.deps.counted.set(this.socket, this.socket.bytesRead - (unread?.length ?? 0));
    this.deps.handOver(this.socket, unread);
  }
}

/** Whether an allowed request is one the lane relays itself (else Node's path takes the connection). */
function relaysItself(result: GateResult): result is Extract<GateResult, { verdict: "allow" }> {
  if (result.verdict !== "allow") return false;
  const route = result.match.route;
  if (route.kind === "hijack") return false;
  const profile = result.profileRules;
  return profile.view === undefined && profile.body?.inspects(route.operation) !== true;
}

/** One request relayed to the daemon and its answer relayed back. */
class LaneExchange implements DaemonExchange {
  private conn: DaemonConnection | null = null;
  private retried = false;
  private answered = false;
  private pending: Buffer | null = null;
  private head: ResponseHead | null = null;
  private remaining = 0;
  private scanner: ChunkedScanner | null = null;
  private finished = false;
  /** Set while the daemon connection is paused for a slow client: resumes it on the client's drain. */
  private onClientDrain: (() => void) | null = null;
  /** The client has received bytes of this answer: a later failure can only cut the connection. */
  private answeredClient = false;
  readonly streaming: boolean;
  /** Request body bytes still to come from the client (Content-Length framing). */
  bodyRemaining: number;

  constructor(
    private readonly lane: LaneConnection,
    private readonly deps: LaneDeps,
    private readonly request: SimpleHead,
    private readonly result: Extract<GateResult, { verdict: "allow" }>,
    private readonly ex: Exchange,
  ) {
    this.streaming = result.match.route.kind === "stream";
    this.bodyRemaining = request.bodyLength;
  }

  start(): void {
    if (this.streaming) this.deps.observer.streamOpened?.("stream");
    this.send();
  }

  private send(): void {
    const { request, deps } = this;
    const conn = deps.pool.acquire(this, this.retried);
    this.conn = conn;
    const host = request.hasHost ? "" : `Host: ${deps.hostHeader}\r\n`;
    conn.socket.write(
      `${request.method} ${request.target} HTTP/1.1\r\n${host}${request.forwardLines}\r\n`,
      "latin1",
    );
  }

  /** Body bytes from the client, on to the daemon; the client waits while the daemon is behind. */
  sendBody(part: Buffer): void {
    this.bodyRemaining -= part.length;
    const conn = this.conn;
    if (this.finished || conn === null || conn.gone) return;
    if (!conn.socket.write(part)) {
      const client = this.lane.socket;
      client.pause();
      conn.socket.once("drain", () => client.resume());
    }
  }

  onData(chunk: Buffer): boolean {
    if (this.finished) return false;
    this.answered = true;
    try {
      if (this.head === null) this.readHead(chunk);
      else this.relayBody(chunk, 0, null);
    } catch (error) {
      this.broken(error as Error);
      return false;
    }
    // What the client socket has not sent yet may include views of `chunk` (see DaemonExchange).
    return this.lane.socket.writableLength > 0;
  }

  private readHead(chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      const end = responseHeadEnd(buf);
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD)
          throw new DaemonProtocolError("the daemon's answer head is too large");
        this.pending = Buffer.from(buf); // a copy: `chunk` may be a view of a reused read buffer
        return;
      }
      const head = parseResponseHead(
        buf.subarray(0, end),
        this.request.method === "HEAD",
        this.request.close,
      );
      if (head.status === 101)
        throw new DaemonProtocolError("the daemon switched protocols on a plain request");
      if (head.status < 200) {
        buf = buf.subarray(end); // 1xx informational: not relayed (as on the Node path)
        continue;
      }
      this.pending = null;
      this.head = head;
      // The client is told the connection stays open and for how long, as Node's own answers say.
      const keptOpen = !this.request.close && head.framing.kind !== "close" && this.bodyRemaining === 0;
      const relayed = keptOpen
        ? [head.relayed.subarray(0, head.relayed.length - 2), this.deps.keepAliveTail]
        : [head.relayed];
      if (head.framing.kind === "length") this.remaining = head.framing.length;
      else if (head.framing.kind === "chunked") this.scanner = new ChunkedScanner();
      this.relayBody(buf, end, relayed);
      return;
    }
  }

  /** Relays `buf` from `offset` (with `head` in front, once) and finishes at the end of the message. */
  private relayBody(buf: Buffer, offset: number, head: readonly Buffer[] | null): void {
    const framing = (this.head as ResponseHead).framing;
    let end = buf.length;
    let done = false;
    if (framing.kind === "none") {
      end = offset;
      done = true;
    } else if (framing.kind === "length") {
      end = offset + Math.min(this.remaining, buf.length - offset);
      this.remaining -= end - offset;
      done = this.remaining === 0;
    } else if (framing.kind === "chunked") {
      const at = (this.scanner as ChunkedScanner).scan(buf, offset);
      if (at >= 0) {
        end = at;
        done = true;
      }
    }
    this.write(head, end > offset ? buf.subarray(offset, end) : null);
    // Bytes after the end of the answer: the daemon said more than it framed; that connection is not reused.
    if (done) this.complete(end < buf.length);
  }

  private write(head: readonly Buffer[] | null, body: Buffer | null): void {
    const socket = this.lane.socket;
    let ok = true;
    if (head !== null) {
      this.answeredClient = true;
      // One writev for the head's pieces and the body that came with it.
      socket.cork();
      for (const part of head) socket.write(part);
      if (body !== null) ok = socket.write(body);
      socket.uncork();
      ok &&= socket.writableLength < socket.writableHighWaterMark;
    } else if (body !== null) ok = socket.write(body);
    else return;
    if (!ok && this.onClientDrain === null && this.conn !== null) {
      // The client reads slower than the daemon writes: stop reading the daemon until it catches up.
      const conn = this.conn;
      conn.socket.pause();
      this.onClientDrain = () => {
        this.onClientDrain = null;
        if (!conn.gone) conn.socket.resume();
      };
      socket.once("drain", this.onClientDrain);
    }
  }

  private complete(extraBytes: boolean): void {
    this.finished = true;
    const head = this.head as ResponseHead;
    const conn = this.conn as DaemonConnection;
    if (this.onClientDrain !== null) {
      // The connection goes back to the pool: a later drain of this client must not resume it.
      this.lane.socket.off("drain", this.onClientDrain);
      this.onClientDrain = null;
      conn.socket.resume();
    }
    // Answered before the whole body came: the daemon connection and the client's are both mid-body.
    const bodyLeft = this.bodyRemaining > 0;
    if (extraBytes || bodyLeft || head.daemonCloses || head.framing.kind === "close")
      this.deps.pool.discard(conn);
    else this.deps.pool.release(conn);
    this.record(head.status);
    this.lane.exchangeDone(this.request.close || bodyLeft || head.framing.kind === "close");
  }

  onGone(error: Error | undefined): void {
    if (this.finished) return;
    const head = this.head;
    const idempotent = this.request.method === "GET" || this.request.method === "HEAD";
    if (
      head === null &&
      !this.answered &&
      idempotent &&
      (this.conn as DaemonConnection).reused &&
      !this.retried
    ) {
      // A kept-alive connection the daemon closed meanwhile: once more on a new one (GET and HEAD only).
      this.retried = true;
      this.send();
      return;
    }
    if (head !== null && head.framing.kind === "close" && error === undefined) {
      this.complete(false);
      return;
    }
    this.broken(error ?? new Error("the daemon closed the connection before the answer was complete"));
  }

  /** The daemon side failed: a 502 if the client has heard nothing yet, else the client connection is cut. */
  private broken(error: Error): void {
    if (this.finished) return;
    this.finished = true;
    if (this.conn !== null) this.deps.pool.discard(this.conn);
    if (!this.answeredClient && !this.lane.socket.destroyed) {
      const message =
        error instanceof DaemonProtocolError
          ? `portcullis could not relay the answer of the Docker daemon at ${this.deps.daemon}: ${error.message}`
          : `portcullis could not reach the Docker daemon at ${this.deps.daemon}: ${describeError(error)}`;
      const close = this.request.close || this.bodyRemaining > 0;
      this.lane.socket.write(rawErrorResponse(502, message, close));
      this.deps.observer.upstreamError?.();
      this.record(502, error.message);
      this.lane.exchangeDone(close);
      return;
    }
    this.record(this.head?.status ?? 502, error.message);
    this.lane.socket.destroy();
    this.lane.exchangeDone(true);
  }

  /** The client went away mid-exchange: the daemon connection goes too. */
  clientGone(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.conn !== null) this.deps.pool.discard(this.conn);
    this.record(this.head?.status ?? 499, "the client went away");
  }

  private record(status: number, error?: string): void {
    if (this.streaming) this.deps.observer.streamClosed?.("stream");
    observe(this.deps.observer, this.ex, this.result, status, error === undefined ? {} : { error });
  }
}
