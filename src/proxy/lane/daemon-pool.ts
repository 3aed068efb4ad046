/**
 * Keep-alive connections to the daemon for the fast lane. A connection serves one exchange at a time;
 * its listeners stay attached for its whole life and report to whichever exchange holds it.
 */
import type { OnReadOpts, Socket } from "node:net";

export interface DaemonExchange {
  /**
   * Bytes from the daemon. `chunk` may be a view of a buffer the next read reuses: keep a copy of
   * what must outlive the call, and return true while a write still holds it.
   */
  onData(chunk: Buffer): boolean;
  /** The daemon ended or reset the connection, or it could not be made. */
  onGone(error: Error | undefined): void;
}

/** Opens a daemon socket; with `onread`, reads land in the buffers it hands out (no stream per read). */
export type OpenDaemonSocket = (onread?: OnReadOpts) => Socket;

/** As much as Node reads at a time. */
const READ_BYTES = 64 * 1024;

export class DaemonConnection {
  exchange: DaemonExchange | null = null;
  /** Served an earlier exchange: a failure before any byte may just be the daemon closing it meanwhile. */
  reused = false;
  idleSince = 0;
  gone = false;
  readonly socket: Socket;
  private readBuffer: Buffer | null = null;
  /** A write to the client still holds part of readBuffer: the next read needs another. */
  private held = false;

  constructor(open: OpenDaemonSocket, readsInPlace: boolean) {
    // Reads into one reused buffer: Node's per-read Buffer, stream push and `data` event cost more
    // than the relay's own work for the many small reads of daemon answers.
    this.socket = readsInPlace
      ? open({
          buffer: () => this.nextReadBuffer(),
          callback: (n: number, buf: Uint8Array) => {
            this.deliver((buf as Buffer).subarray(0, n));
            return true; // back-pressure pauses the socket itself
          },
        })
      : open();
    const socket = this.socket;
    if (!readsInPlace) socket.on("data", (chunk: Buffer) => this.deliver(chunk));
    socket.on("end", () => this.lost(undefined));
    socket.on("error", (error: Error) => this.lost(error));
    socket.on("close", () => this.lost(undefined));
  }

  private nextReadBuffer(): Buffer {
    if (this.readBuffer === null || this.held) {
      this.readBuffer = Buffer.allocUnsafeSlow(READ_BYTES);
      this.held = false;
    }
    return this.readBuffer;
  }

  private deliver(chunk: Buffer): void {
    if (this.exchange) this.held = this.exchange.onData(chunk);
    else this.socket.destroy(); // the daemon speaks out of turn: this connection cannot be trusted again
  }

  private lost(error: Error | undefined): void {
    if (this.gone) return;
    this.gone = true;
    this.socket.destroy();
    const exchange = this.exchange;
    this.exchange = null;
    exchange?.onGone(error);
  }
}

export class DaemonPool {
  private readonly idle: DaemonConnection[] = [];
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly open: OpenDaemonSocket,
    /** Whether `open` honours `onread` (plain sockets do; TLS sockets are read as streams). */
    private readonly readsInPlace: boolean,
    private readonly idleTimeoutMs = 30_000,
  ) {}

  /** `fresh`: a new connection even when one is idle. */
  acquire(exchange: DaemonExchange, fresh = false): DaemonConnection {
    let conn = fresh ? undefined : this.idle.pop();
    while (conn?.gone) conn = this.idle.pop();
    if (conn === undefined) {
      conn = new DaemonConnection(this.open, this.readsInPlace);
      conn.socket.setNoDelay?.(true);
    } else conn.socket.ref();
    conn.exchange = exchange;
    return conn;
  }

  /** Back to the pool after a complete exchange that left nothing unread. */
  release(conn: DaemonConnection): void {
    conn.exchange = null;
    if (conn.gone) return;
    if (this.closed) {
      conn.socket.destroy();
      return;
    }
    conn.reused = true;
    conn.idleSince = performance.now();
    conn.socket.unref(); // an idle pooled connection does not keep the process alive (as undici's)
    this.idle.push(conn);
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(1000, this.idleTimeoutMs / 4));
      this.sweeper.unref();
    }
  }

  /** Never reused: an exchange that broke off mid-answer. */
  discard(conn: DaemonConnection): void {
    conn.exchange = null;
    conn.gone = true;
    conn.socket.destroy();
  }

  private sweep(): void {
    const oldest = performance.now() - this.idleTimeoutMs;
    let kept = 0;
    for (const conn of this.idle) {
      if (conn.gone) continue;
      if (conn.idleSince < oldest) conn.socket.destroy();
      else this.idle[kept++] = conn;
    }
    this.idle.length = kept;
    if (kept === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  close(): void {
    this.closed = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const conn of this.idle) conn.socket.destroy();
    this.idle.length = 0;
  }
}
