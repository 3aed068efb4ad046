/**
 * Hijacked routes (attach, exec start, attach/ws, session, grpc). The request goes to the daemon on a
 * dedicated connection; the client's later bytes are held until the daemon answers 101 (or dockerd's
 * raw 200 on attach/exec start). Any other answer is relayed and both connections are closed, so a
 * failed or denied upgrade can never carry a second request through.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { RouteDef } from "../routing/route-def.js";
import { endToEndRequestHeaders, headerValue } from "./headers.js";
import { ChunkedScanner } from "./lane/response.js";
import { sendRawError } from "./respond.js";
import type { Upstream } from "./upstream.js";

export interface TunnelOutcome {
  readonly status: number;
  readonly tunnelled: boolean;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly error?: string;
}

const MAX_RESPONSE_HEAD = 64 * 1024;
/** Routes where dockerd hijacks even without `Upgrade` and answers a raw `200` stream. */
const RAW_200_HIJACKS = new Set(["ContainerAttach", "ExecStart"]);
const UPGRADE_HEADERS: ReadonlySet<string> = new Set(["connection", "upgrade", "http2-settings"]);

export interface HijackContext {
  readonly upstream: Upstream;
  readonly route: RouteDef;
  readonly maxBodyBytes: number;
}

/** Declared body length of a hijack request, or an error message (chunked bodies are not accepted here). */
function declaredLength(req: IncomingMessage): number | string {
  if (req.headers["transfer-encoding"] !== undefined) {
    return "a hijacked request must frame its body with Content-Length, not Transfer-Encoding";
  }
  const cl = req.headers["content-length"];
  return cl === undefined ? 0 : Number.parseInt(cl, 10);
}

function serializeRequest(req: IncomingMessage, body: Buffer, withUpgrade: boolean): Buffer {
  const headers = endToEndRequestHeaders(req.rawHeaders, {
    keepContentLength: false,
    ...(withUpgrade ? { keep: UPGRADE_HEADERS } : {}),
  });
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  if (body.length > 0 || req.headers["content-length"] !== undefined)
    head += `Content-Length: ${body.length}\r\n`;
  return Buffer.concat([Buffer.from(`${head}\r\n`, "latin1"), body]);
}

/**
 * Reads `stream` until `complete` finds what it needs in the bytes so far (returning a value), then
 * stops listening and pauses the stream. `complete` may throw to give up; an early end rejects.
 */
function readUntil<T>(
  stream: Duplex,
  first: Buffer,
  complete: (buffered: Buffer) => T | undefined,
  endedEarly: string,
): Promise<T> {
  try {
    const ready = complete(first);
    if (ready !== undefined) return Promise.resolve(ready);
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    let buffered = first;
    const settle = (fn: () => void) => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onEnd);
      stream.off("error", onError);
      stream.pause();
      fn();
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      try {
        const ready = complete(buffered);
        if (ready !== undefined) settle(() => resolve(ready));
      } catch (error) {
        settle(() => reject(error));
      }
    };
    const onEnd = () => settle(() => reject(new Error(endedEarly)));
    const onError = (error: Error) => settle(() => reject(error));
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("close", onEnd);
    stream.on("error", onError);
    stream.resume();
  });
}

/** Reads exactly `length` body bytes from `head` then the socket; what follows is pushed back unread. */
function readBody(socket: Duplex, head: Buffer, length: number): Promise<Buffer> {
  return readUntil(
    socket,
    head,
    (buffered) => {
      if (buffered.length < length) return undefined;
      if (buffered.length > length) socket.unshift(buffered.subarray(length));
      return buffered.subarray(0, length);
    },
    "client closed before sending the whole request body",
  );
}

/** Entry from the server's `upgrade` event: `socket` is already detached from the HTTP parser. */
export async function hijackUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: HijackContext,
): Promise<TunnelOutcome> {
  socket.pause();
  const length = declaredLength(req);
  if (typeof length === "string") return refuse(socket, 400, length);
  if (length > ctx.maxBodyBytes) return refuse(socket, 413, tooLarge(length, ctx.maxBodyBytes));
  let body: Buffer;
  try {
    body = await readBody(socket, head, length);
  } catch (error) {
    socket.destroy();
    return { status: 499, tunnelled: false, bytesIn: 0, bytesOut: 0, error: (error as Error).message };
  }
  return tunnel(socket, serializeRequest(req, body, true), ctx);
}

/**
 * Entry from the `request` event for a hijack route sent without `Upgrade` (dockerd answers a raw
 * 200 stream): the body is read through the parser, then the socket is taken from it.
 */
export async function hijackRequest(req: IncomingMessage, ctx: HijackContext): Promise<TunnelOutcome> {
  const socket = req.socket;
  const length = declaredLength(req);
  if (typeof length === "string") return refuse(detach(socket), 400, length);
  if (length > ctx.maxBodyBytes) return refuse(detach(socket), 413, tooLarge(length, ctx.maxBodyBytes));
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer);
  } catch (error) {
    socket.destroy();
    return { status: 499, tunnelled: false, bytesIn: 0, bytesOut: 0, error: (error as Error).message };
  }
  return tunnel(detach(socket), serializeRequest(req, Buffer.concat(chunks), false), ctx);
}

/**
 * Takes a socket away from Node's HTTP server after a complete request: adding our own `data`
 * listener makes Node stop feeding the parser from the handle, then the server's listeners go.
 */
function detach(socket: Socket): Socket {
  const hold = () => {};
  socket.on("data", hold);
  for (const event of ["data", "end", "drain", "timeout"] as const) {
    for (const listener of socket.listeners(event)) {
      if (listener !== hold) socket.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  socket.removeListener("data", hold);
  socket.setTimeout(0);
  socket.pause();
  return socket;
}

function tooLarge(length: number, max: number): string {
  return `request body of ${length} bytes is larger than the ${max}-byte limit for hijacked requests (PORTCULLIS_HIJACK_BODY_MAX_BYTES)`;
}

function refuse(socket: Duplex, status: number, message: string): TunnelOutcome {
  sendRawError(socket, status, message);
  return { status, tunnelled: false, bytesIn: 0, bytesOut: 0, error: message };
}

interface ResponseHead {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  /** Everything read so far: the head and any bytes after it. */
  readonly bytes: Buffer;
  readonly headLength: number;
}

function readResponseHead(upstream: Socket): Promise<ResponseHead> {
  return readUntil(
    upstream,
    Buffer.alloc(0),
    (buffered) => {
      const end = buffered.indexOf("\r\n\r\n");
      if (end === -1) {
        if (buffered.length > MAX_RESPONSE_HEAD) throw new Error("the daemon's response head is too large");
        return undefined;
      }
      const lines = buffered.subarray(0, end).toString("latin1").split("\r\n");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
      if (status === null) throw new Error("the daemon sent a malformed status line");
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      return { status: Number(status[1]), headers, bytes: buffered, headLength: end + 4 };
    },
    "the daemon closed the connection before answering",
  );
}

function tunnel(client: Duplex, request: Buffer, ctx: HijackContext): Promise<TunnelOutcome> {
  const upstream = ctx.upstream.connect();
  let bytesIn = 0;
  let bytesOut = 0;
  return new Promise<TunnelOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: TunnelOutcome) => {
      if (!settled) {
        settled = true;
        resolve(outcome);
      }
    };
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
    client.on("error", closeBoth);

    upstream.once("connect", () => upstream.write(request));
    readResponseHead(upstream).then(
      (head) => {
        const rawHijack =
          head.status === 200 &&
          RAW_200_HIJACKS.has(ctx.route.operation) &&
          !head.headers.has("content-length") &&
          !head.headers.has("transfer-encoding");
        upstream.on("error", closeBoth);
        if (head.status === 101 || rawHijack) {
          client.write(head.bytes);
          bytesOut += head.bytes.length - head.headLength;
          upstream.on("data", (c: Buffer) => {
            bytesOut += c.length;
          });
          client.on("data", (c: Buffer) => {
            bytesIn += c.length;
          });
          // pipe() passes each side's FIN on as end(): half-close is what `docker run -i` relies on.
          upstream.pipe(client);
          client.pipe(upstream);
          upstream.resume();
          client.resume();
          let open = 2;
          const done = () => {
            if (--open === 0) finish({ status: head.status, tunnelled: true, bytesIn, bytesOut });
          };
          client.once("close", () => finish({ status: head.status, tunnelled: true, bytesIn, bytesOut }));
          upstream.once("end", done);
          client.once("end", done);
          return;
        }
        relayAndClose(head, upstream, client);
        client.once("close", () => finish({ status: head.status, tunnelled: false, bytesIn, bytesOut }));
      },
      (error: Error) => {
        const message = `portcullis could not reach the Docker daemon at ${ctx.upstream.description}: ${error.message}`;
        upstream.destroy();
        sendRawError(client, 502, message);
        finish({ status: 502, tunnelled: false, bytesIn, bytesOut, error: message });
      },
    );
  });
}

/** A non-upgrade answer: pass it on once, framed as the daemon framed it, then close both sides. */
function relayAndClose(head: ResponseHead, upstream: Socket, client: Duplex): void {
  const length = head.headers.get("content-length");
  const chunked = /chunked/i.test(head.headers.get("transfer-encoding") ?? "");
  let remaining =
    length !== undefined ? Number.parseInt(length, 10) + head.headLength : Number.POSITIVE_INFINITY;
  // The chunked framing is followed to its end (the first piece is the head with what came behind it).
  const scanner = chunked ? new ChunkedScanner() : null;
  let scanFrom = head.headLength;
  const write = (chunk: Buffer) => {
    let part = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
    let ended = false;
    if (scanner !== null) {
      let end: number;
      try {
        end = scanner.scan(part, scanFrom);
      } catch {
        upstream.destroy();
        client.destroy();
        return;
      }
      scanFrom = 0;
      if (end >= 0) {
        part = part.subarray(0, end);
        ended = true;
      }
    }
    remaining -= part.length;
    client.write(part);
    if (ended || remaining <= 0) {
      upstream.destroy();
      client.end();
    }
  };
  // The daemon closed (a close-delimited answer such as attach's raw error): close both sides. The
  // client socket is paused and would never see its peer's FIN, so nothing else would end it.
  upstream.on("end", () => {
    client.end();
    upstream.destroy();
  });
  write(head.bytes);
  if (!upstream.destroyed) {
    upstream.on("data", write);
    upstream.resume();
  }
  // The client's held bytes are never read: whatever it pipelined dies with the connection.
}

export function wantsUpgrade(req: IncomingMessage): boolean {
  return headerValue(req.rawHeaders, "upgrade") !== undefined;
}
