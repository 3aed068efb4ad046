/** Forwards one allowed, ordinary request to the daemon and streams the answer back, flushing at once. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { endToEndRequestHeaders, endToEndResponseHeaders } from "./headers.js";
import { sendError } from "./respond.js";
import type { Upstream } from "./upstream.js";

export interface ForwardOutcome {
  readonly status: number;
  /** Set when the daemon could not be reached or the exchange broke. */
  readonly error?: Error;
}

function hasBody(req: IncomingMessage): boolean {
  const te = req.headers["transfer-encoding"];
  if (te !== undefined) return true;
  const cl = req.headers["content-length"];
  return cl !== undefined && cl !== "0";
}

/**
 * `inspected` is the body already read and checked (the original bytes unless a documented mutation
 * applied): it is sent with a Content-Length instead of streaming the client's framing.
 */
export function forward(
  req: IncomingMessage,
  res: ServerResponse,
  upstream: Upstream,
  inspected?: Buffer,
): Promise<ForwardOutcome> {
  const withBody = inspected === undefined && hasBody(req);
  const headers = endToEndRequestHeaders(req.rawHeaders, { keepContentLength: withBody });
  if (inspected !== undefined && inspected.length > 0) headers.push("Content-Length", String(inspected.length));
  const abort = new AbortController();
  // A client that goes away mid-stream releases the daemon connection too.
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.once("close", onClose);
  let status = 0;
  return upstream.pool
    .stream(
      {
        method: req.method as string,
        path: req.url as string,
        headers,
        body: inspected !== undefined ? (inspected.length > 0 ? inspected : null) : withBody ? req : null,
        signal: abort.signal,
      },
      ({ statusCode, headers }) => {
        status = statusCode;
        const responseHeaders = endToEndResponseHeaders(headers as Record<string, string | string[]>);
        res.writeHead(statusCode, responseHeaders);
        // Streams (events, wait, logs -f) send headers long before any body: the client waits for them.
        if (headers["content-length"] === undefined) res.flushHeaders();
        return res;
      },
    )
    .then(
      (): ForwardOutcome => ({ status }),
      (error: Error): ForwardOutcome => {
        if (abort.signal.aborted) return { status: status || 499, error };
        if (!res.headersSent && (error as NodeJS.ErrnoException).code === "UND_ERR_INVALID_ARG") {
          // undici refused to send what the client sent (e.g. two Host headers): a client error, not a 502
          sendError(res, 400, `portcullis refused the request: ${error.message}`, true);
          return { status: 400, error };
        }
        if (!res.headersSent) {
          sendError(
            res,
            502,
            `portcullis could not reach the Docker daemon at ${upstream.description}: ${describeError(error)}`,
          );
          return { status: 502, error };
        }
        res.destroy(error);
        return { status, error };
      },
    )
    .finally(() => res.off("close", onClose));
}

export function describeError(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  const cause = (error as { cause?: Error }).cause;
  const causeCode = cause ? (cause as NodeJS.ErrnoException).code : undefined;
  return [code, causeCode, cause?.message ?? error.message].filter(Boolean).join(": ");
}
