/**
 * The one way portcullis answers a request itself: Docker's error format, byte for byte
 * (`Content-Type: application/json` exactly, `{"message":"..."}\n`), so the docker CLI prints
 * `Error response from daemon: <message>`.
 */
import type { ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

export function errorBody(message: string): Buffer {
  return Buffer.from(`${JSON.stringify({ message })}\n`, "utf8");
}

/** Answers on a normal HTTP response. `close` asks the client to drop the connection afterwards. */
export function sendError(res: ServerResponse, status: number, message: string, close = false): void {
  const body = errorBody(message);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": body.length,
    ...(close ? { Connection: "close" } : {}),
  });
  res.end(body);
}

/** A whole Docker-format error answer as bytes, for the paths that write to the socket themselves. */
export function rawErrorResponse(status: number, message: string, close: boolean): Buffer {
  const body = errorBody(message);
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
    "Content-Type: application/json\r\n" +
    `Content-Length: ${body.length}\r\n` +
    (close ? "Connection: close\r\n" : "") +
    "\r\n";
  return Buffer.concat([Buffer.from(head, "latin1"), body]);
}

/** Answers on a raw socket (upgrade requests, hijacks) and closes it: nothing else may follow. */
export function sendRawError(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  socket.end(rawErrorResponse(status, message, true));
  // A client that keeps sending must not hold the socket open.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Printable form of a request-target for messages: escapes control bytes and caps the length. */
export function printableTarget(target: string): string {
  let out = "";
  for (let i = 0; i < target.length && out.length < 300; i++) {
    const c = target.charCodeAt(i);
    out += c < 0x20 || c === 0x7f ? `\\x${c.toString(16).padStart(2, "0")}` : target[i];
  }
  return out.length >= 300 ? `${out.slice(0, 300)}...` : out;
}
