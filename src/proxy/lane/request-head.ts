/**
 * The request heads the fast lane relays itself: a deliberately narrow, canonical subset of HTTP/1.1
 * (GET, HEAD, POST, PUT or DELETE; origin-form target; HTTP/1.1; CRLF lines; visible-ASCII values; a
 * body only with one Content-Length, and none on GET or HEAD; no chunked bodies, no upgrade).
 * Anything outside it is "other" and goes to Node's own parser (llhttp), which accepts, answers or
 * refuses it exactly as before: this parser never has to be right about odd input.
 */
import { HOP_BY_HOP } from "../headers.js";

export type SimpleMethod = "GET" | "HEAD" | "POST" | "PUT" | "DELETE";

export interface SimpleHead {
  readonly method: SimpleMethod;
  /** The request-target exactly as received. */
  readonly target: string;
  /** End-to-end header lines to forward, each `Name: value\r\n` (hop-by-hop fields and credentials removed). */
  readonly forwardLines: string;
  readonly hasHost: boolean;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  /** The client asked to close the connection after this exchange. */
  readonly close: boolean;
  /** Bytes of the head, through the blank line. */
  readonly length: number;
  /** Body bytes that follow the head (its Content-Length; 0 without one). */
  readonly bodyLength: number;
}

export type HeadParse =
  | { readonly kind: "head"; readonly head: SimpleHead }
  | { readonly kind: "incomplete" }
  | { readonly kind: "other" };

const INCOMPLETE: HeadParse = { kind: "incomplete" };
const OTHER: HeadParse = { kind: "other" };
const HEAD_END = Buffer.from("\r\n\r\n", "latin1");

/** RFC 9110 tchar. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TOKEN[c.charCodeAt(0)] = 1;

/** Fields that send a request to Node's parser: bodies, upgrades and expectations are its business. */
const OTHER_FIELDS = new Set(["transfer-encoding", "upgrade", "expect", "http2-settings"]);
const METHODS: readonly SimpleMethod[] = ["GET", "HEAD", "POST", "PUT", "DELETE"];

export interface HeadLimits {
  readonly maxHeadBytes: number;
  readonly maxHeaderCount: number;
}

export function parseSimpleHead(buf: Buffer, limits: HeadLimits): HeadParse {
  const end = buf.indexOf(HEAD_END);
  if (end < 0) return buf.length > limits.maxHeadBytes ? OTHER : INCOMPLETE;
  const length = end + 4;
  if (length > limits.maxHeadBytes) return OTHER;
  const text = buf.toString("latin1", 0, end);
  let method: SimpleMethod | undefined;
  for (const m of METHODS) {
    if (text.startsWith(m) && text.startsWith(" /", m.length)) {
      method = m;
      break;
    }
  }
  if (method === undefined) return OTHER;
  let pos = method.length + 1;
  const targetStart = pos;
  while (pos < text.length) {
    const c = text.charCodeAt(pos);
    if (c === 0x20) break;
    if (c < 0x21 || c > 0x7e) return OTHER;
    pos++;
  }
  const target = text.slice(targetStart, pos);
  if (!text.startsWith(" HTTP/1.1", pos)) return OTHER;
  pos += 9;
  if (pos === text.length) return head(method, target, "", false, undefined, undefined, false, length, 0);
  if (text.charCodeAt(pos) !== 0x0d || text.charCodeAt(pos + 1) !== 0x0a) return OTHER;
  pos += 2;

  let forwardLines = "";
  let hasHost = false;
  let authorization: string | undefined;
  let contentType: string | undefined;
  let close = false;
  let bodyLength: number | undefined;
  let count = 0;
  while (pos <= text.length) {
    let lineEnd = text.indexOf("\r\n", pos);
    if (lineEnd < 0) lineEnd = text.length;
    if (++count > limits.maxHeaderCount) return OTHER;
    let colon = pos;
    while (colon < lineEnd) {
      const c = text.charCodeAt(colon);
      if (c === 0x3a) break;
      if (c > 0x7f || TOKEN[c] !== 1) return OTHER;
      colon++;
    }
    if (colon === pos || colon === lineEnd) return OTHER;
    let vStart = colon + 1;
    let vEnd = lineEnd;
    for (let i = vStart; i < vEnd; i++) {
      const c = text.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c > 0x7e) return OTHER;
    }
    while (vStart < vEnd && (text.charCodeAt(vStart) === 0x20 || text.charCodeAt(vStart) === 0x09)) vStart++;
    while (vEnd > vStart && (text.charCodeAt(vEnd - 1) === 0x20 || text.charCodeAt(vEnd - 1) === 0x09))
      vEnd--;
    const name = text.slice(pos, colon);
    const value = text.slice(vStart, vEnd);
    const lower = name.toLowerCase();
    pos = lineEnd + 2;
    if (lower === "host") {
      if (hasHost) return OTHER;
      hasHost = true;
    } else if (lower === "authorization") {
      if (authorization !== undefined) return OTHER;
      authorization = value;
      continue;
    } else if (lower === "content-type") {
      if (contentType !== undefined) return OTHER;
      contentType = value;
    } else if (lower === "connection") {
      for (const token of value.split(",")) {
        const t = token.trim().toLowerCase();
        if (t === "close") close = true;
        else if (t !== "keep-alive" && t !== "") return OTHER;
      }
      continue;
    } else if (lower === "content-length") {
      // One plain decimal length, on a method that carries a body; anything else is Node's to judge.
      if (bodyLength !== undefined || method === "GET" || method === "HEAD" || !/^\d{1,15}$/.test(value))
        return OTHER;
      bodyLength = Number(value);
    } else if (OTHER_FIELDS.has(lower)) return OTHER;
    // The other hop-by-hop fields (headers.ts, shared with Node's path) are not relayed either.
    else if (HOP_BY_HOP.has(lower)) continue;
    forwardLines += `${name}: ${value}\r\n`;
  }
  return head(
    method,
    target,
    forwardLines,
    hasHost,
    authorization,
    contentType,
    close,
    length,
    bodyLength ?? 0,
  );
}

function head(
  method: SimpleMethod,
  target: string,
  forwardLines: string,
  hasHost: boolean,
  authorization: string | undefined,
  contentType: string | undefined,
  close: boolean,
  length: number,
  bodyLength: number,
): HeadParse {
  return {
    kind: "head",
    head: { method, target, forwardLines, hasHost, authorization, contentType, close, length, bodyLength },
  };
}
