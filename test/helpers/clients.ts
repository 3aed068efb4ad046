/**
 * Test helper: the client side of fault and soak tests. Small requests over Node's http (with or
 * without keep-alive), and raw-socket exchanges that upload, download, stream or tunnel through the
 * proxy and then go away mid-way, the way a killed client does. Every wait is bounded.
 *
 *   const fx = await createFixtures(engine.host, engine.image);
 *   await abortCycle("hijack-attach", proxy.port, fx);
 *   await removeFixtures(engine.host, fx);
 */
import http from "node:http";
import net from "node:net";
import { runDocker } from "./docker-cli.js";

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface CallOptions {
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  /** Default: a fresh connection per call (no keep-alive). */
  readonly agent?: http.Agent;
  readonly timeoutMs?: number;
}

/** One HTTP exchange with the proxy on 127.0.0.1:port; rejects on a socket error or timeout. */
export function call(port: number, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = typeof opts.body === "string" ? Buffer.from(opts.body) : opts.body;
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        agent: opts.agent ?? false,
        headers: {
          ...(body ? { "Content-Type": "application/json", "Content-Length": String(body.length) } : {}),
          ...(opts.headers ?? {}),
        },
        timeout: opts.timeoutMs ?? 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () =>
      req.destroy(new Error(`${method} ${path}: no answer in ${opts.timeoutMs ?? 15_000} ms`)),
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** `{"message": ...}` of a JSON body, or undefined when the body is not Docker's error format. */
export function jsonMessage(r: Reply): string | undefined {
  try {
    const parsed = JSON.parse(r.body.toString("utf8")) as { message?: unknown };
    return typeof parsed.message === "string" ? parsed.message : undefined;
  } catch {
    return undefined;
  }
}

/* ------------------------------------------------------------------ raw sockets */

export class RawClient {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  ended = false;
  error: string | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    const gone = () => {
      this.ended = true;
      this.waiter?.();
    };
    socket.on("end", gone);
    socket.on("close", gone);
    socket.on("error", (e: NodeJS.ErrnoException) => {
      this.error = e.code ?? e.message;
      gone();
    });
  }

  static connect(port: number, timeoutMs = 5_000): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error("connect timed out"));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(new RawClient(socket));
      });
      socket.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /** Everything received so far. */
  get received(): Buffer {
    return this.buf;
  }

  write(bytes: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.write(bytes, () => resolve());
    });
  }

  /** Resolves once `probe(received)` holds; rejects on timeout, or when the peer closed first. */
  until(probe: (b: Buffer) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.buf.subarray(0, 160).toString("latin1"))}`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        if (probe(this.buf)) {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve();
        } else if (this.ended) {
          clearTimeout(timer);
          this.waiter = undefined;
          reject(
            new Error(
              `connection closed (${this.error ?? "EOF"}) while waiting for ${what}; got ${JSON.stringify(this.buf.subarray(0, 160).toString("latin1"))}`,
            ),
          );
        }
      };
      this.waiter = check;
      check();
    });
  }

  /** Status code of the response head received so far, or undefined. */
  status(): number | undefined {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(this.buf.subarray(0, 16).toString("latin1"));
    return m ? Number(m[1]) : undefined;
  }

  headEnd(): number {
    return this.buf.indexOf("\r\n\r\n");
  }

  /** The client goes away without a word: no FIN handshake from our side, just a close. */
  destroy(): void {
    this.socket.destroy();
  }
}

const hasHead = (b: Buffer) => b.indexOf("\r\n\r\n") !== -1;

/* ------------------------------------------------------------------ fixtures */

export interface Fixtures {
  readonly image: string;
  /** Running, stdin open, runs `cat`: attach and exec echo what they are sent. */
  readonly cat: string;
  /** Running, prints a line every 200 ms. */
  readonly ticker: string;
  /** Running, idle: archive uploads go here (dockerd serialises them per container). */
  readonly sink: string;
}

async function mustRun(host: string, args: string[]): Promise<string> {
  const r = await runDocker(host, args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Creates the containers the cycles use, straight on the daemon. */
export async function createFixtures(
  dockerHost: string,
  image: string,
  prefix = "pc-fault",
): Promise<Fixtures> {
  const cat = await mustRun(dockerHost, ["run", "-d", "-i", "--name", `${prefix}-cat`, image, "cat"]);
  const ticker = await mustRun(dockerHost, [
    "run",
    "-d",
    "--name",
    `${prefix}-ticker`,
    image,
    "sh",
    "-c",
    "while true; do echo tick; sleep 0.2; done",
  ]);
  const sink = await mustRun(dockerHost, ["run", "-d", "--name", `${prefix}-sink`, image, "sleep", "100000"]);
  return { image, cat, ticker, sink };
}

export async function removeFixtures(dockerHost: string, fx: Fixtures | undefined): Promise<void> {
  if (fx === undefined) return;
  await runDocker(dockerHost, ["rm", "-f", "-v", fx.cat, fx.ticker, fx.sink], { timeoutMs: 30_000 });
}

/* ------------------------------------------------------------------ abort cycles */

/** Uploads last: dockerd works through aborted uploads for a while after the client is gone. */
export const ABORT_KINDS = [
  "download-save",
  "download-export",
  "stream-events",
  "stream-logs",
  "hijack-attach",
  "hijack-exec",
  "upload-archive",
  "upload-load",
] as const;
export type AbortKind = (typeof ABORT_KINDS)[number];

/** The toggles the cycles need. */
export const CYCLE_ENV = { CONTAINERS: "1", IMAGES: "1", EXEC: "1", POST: "1", EVENTS: "1" } as const;

/** A ustar header for one regular file of `size` bytes: a valid start of an archive that never ends. */
export function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  h.write(name, 0, "latin1");
  h.write("0000644\0", 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  h.write(
    `${Math.floor(Date.now() / 1000)
      .toString(8)
      .padStart(11, "0")}\0`,
    136,
    "latin1",
  );
  h.write("        ", 148, "latin1");
  h.write("0", 156, "latin1");
  h.write("ustar\0" + "00", 257, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

const UPLOAD_SIZE = 8 * 1024 * 1024;
const PARTIAL = Buffer.concat([tarHeader("partial.bin", UPLOAD_SIZE), Buffer.alloc(64 * 1024, 0x61)]);

function head(method: string, path: string, headers: Record<string, string> = {}): string {
  let h = `${method} ${path} HTTP/1.1\r\nHost: docker\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  return `${h}\r\n`;
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Creates an exec of `cat` in the cat container through the proxy; resolves its id. */
export async function createExec(port: number, fx: Fixtures, agent?: http.Agent): Promise<string> {
  const r = await call(port, "POST", `/v1.41/containers/${fx.cat}/exec`, {
    body: JSON.stringify({ AttachStdin: true, AttachStdout: true, AttachStderr: true, Cmd: ["cat"] }),
    ...(agent ? { agent } : {}),
  });
  if (r.status !== 201) throw new Error(`exec create: ${r.status} ${r.body.toString()}`);
  return (JSON.parse(r.body.toString()) as { Id: string }).Id;
}

/**
 * One client that starts an exchange through the proxy on `port` and goes away in the middle of it:
 * mid-upload (8 MiB declared, 64 KiB sent), mid-download (after 64 KiB), mid-stream (after the head
 * or the first line), mid-hijack (after the 101 and one echoed line).
 */
export async function abortCycle(
  kind: AbortKind,
  port: number,
  fx: Fixtures,
  agent?: http.Agent,
): Promise<void> {
  const execId = kind === "hijack-exec" ? await createExec(port, fx, agent) : undefined;
  const c = await RawClient.connect(port);
  try {
    switch (kind) {
      case "upload-archive":
      case "upload-load": {
        const path =
          kind === "upload-archive"
            ? `/v1.41/containers/${fx.sink}/archive?path=/tmp`
            : "/v1.41/images/load?quiet=1";
        await c.write(
          head(kind === "upload-archive" ? "PUT" : "POST", path, {
            "Content-Type": "application/x-tar",
            "Content-Length": String(UPLOAD_SIZE + 1024),
          }),
        );
        await c.write(PARTIAL);
        // Let the proxy start relaying (its head and some body reach the daemon), then vanish.
        await tick(2);
        if (c.ended)
          throw new Error(
            `${kind}: the proxy closed before the client went away: ${c.received.toString("latin1").slice(0, 200)}`,
          );
        break;
      }
      case "download-save":
      case "download-export": {
        const path =
          kind === "download-save"
            ? `/v1.41/images/${encodeURIComponent(fx.image)}/get`
            : `/v1.41/containers/${fx.cat}/export`;
        await c.write(head("GET", path));
        await c.until((b) => hasHead(b) && b.length >= 64 * 1024, `${kind}: 64 KiB of the download`);
        if (c.status() !== 200) throw new Error(`${kind}: status ${c.status()}`);
        break;
      }
      case "stream-events": {
        await c.write(head("GET", "/v1.41/events"));
        await c.until(hasHead, "events: the response head");
        if (c.status() !== 200) throw new Error(`events: status ${c.status()}`);
        break;
      }
      case "stream-logs": {
        await c.write(head("GET", `/v1.41/containers/${fx.ticker}/logs?follow=1&stdout=1&stderr=1&tail=1`));
        await c.until((b) => hasHead(b) && b.includes("tick"), "logs -f: a line");
        break;
      }
      case "hijack-attach":
      case "hijack-exec": {
        const body = kind === "hijack-exec" ? JSON.stringify({ Detach: false, Tty: false }) : "";
        const path =
          kind === "hijack-exec"
            ? `/v1.41/exec/${execId}/start`
            : `/v1.41/containers/${fx.cat}/attach?stream=1&stdin=1&stdout=1&stderr=1`;
        await c.write(
          head("POST", path, {
            Connection: "Upgrade",
            Upgrade: "tcp",
            "Content-Type": "application/json",
            "Content-Length": String(Buffer.byteLength(body)),
          }) + body,
        );
        await c.until(hasHead, `${kind}: the 101`);
        if (c.status() !== 101)
          throw new Error(`${kind}: status ${c.status()} ${c.received.toString("latin1").slice(0, 200)}`);
        const marker = `m${Math.random().toString(36).slice(2, 10)}`;
        await c.write(`${marker}\n`);
        await c.until((b) => b.includes(marker), `${kind}: the echo`);
        break;
      }
    }
  } finally {
    c.destroy();
  }
}
