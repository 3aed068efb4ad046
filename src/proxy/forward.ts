/** Forwards one allowed, ordinary request to the daemon and streams the answer back, flushing at once. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { endToEndRequestHeaders } from "./headers.js";
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
  if (inspected !== undefined && inspected.length > 0)
    headers.push("Content-Length", String(inspected.length));
  // undici's dispatch() with a small handler rather than its stream() API: no AbortController,
  // AsyncResource, finished() listeners or parsed header object per request. Measured by
  // `npm run bench` (docs/benchmarks.md): about a third less CPU per small request.
  return new Promise<ForwardOutcome>((resolve) => {
    let status = 0;
    let abortUpstream: ((reason: Error) => void) | null = null;
    let clientGone = false;
    let completed = false;
    let settled = false;
    let resume: (() => void) | null = null;
    const settle = (outcome: ForwardOutcome) => {
      if (settled) return;
      settled = true;
      res.off("close", onClose);
      if (resume) res.off("drain", resume);
      resolve(outcome);
    };
    // A client that goes away mid-stream releases the daemon connection too.
    const onClose = () => {
      if (settled || res.writableFinished) return;
      if (completed) {
        settle({ status, error: new Error("the client went away before the answer was delivered") });
        return;
      }
      clientGone = true;
      abortUpstream?.(new Error("the client went away"));
    };
    res.once("close", onClose);
    res.on("error", onClose); // stays: a late error on a finished response must not crash the process
    upstream.pool.dispatch(
      {
        method: req.method as string,
        path: req.url as string,
        headers,
        body: inspected !== undefined ? (inspected.length > 0 ? inspected : null) : withBody ? req : null,
      },
      {
        onConnect(abort: (reason: Error) => void) {
          if (clientGone) abort(new Error("the client went away"));
          else abortUpstream = abort;
        },
        onHeaders(statusCode: number, rawHeaders: Buffer[], resumeUpstream: () => void) {
          if (statusCode < 200) return true; // 1xx informational: not relayed (as before)
          status = statusCode;
          const raw: string[] = [];
          let contentLength = false;
          for (let i = 0; i < rawHeaders.length; i += 2) {
            const name = (rawHeaders[i] as Buffer).toString("latin1").toLowerCase();
            if (name === "content-length") contentLength = true;
            raw.push(name, (rawHeaders[i + 1] as Buffer).toString("latin1"));
          }
          res.writeHead(statusCode, endToEndRequestHeaders(raw, { keepContentLength: true }));
          // Streams (events, wait, logs -f) send headers long before any body: the client waits for them.
          if (!contentLength) res.flushHeaders();
          resume = resumeUpstream;
          res.on("drain", resumeUpstream);
          return true;
        },
        onData(chunk: Buffer) {
          return res.write(chunk);
        },
        onComplete() {
          completed = true;
          res.end(() => settle({ status }));
        },
        onError(error: Error) {
          if (clientGone) {
            settle({ status: status || 499, error });
            return;
          }
          if (!res.headersSent && (error as NodeJS.ErrnoException).code === "UND_ERR_INVALID_ARG") {
            // undici refused to send what the client sent (e.g. two Host headers): a client error, not a 502
            sendError(res, 400, `portcullis refused the request: ${error.message}`, true);
            settle({ status: 400, error });
            return;
          }
          if (!res.headersSent) {
            sendError(
              res,
              502,
              `portcullis could not reach the Docker daemon at ${upstream.description}: ${describeError(error)}`,
            );
            settle({ status: 502, error });
            return;
          }
          res.destroy(error);
          settle({ status, error });
        },
      },
    );
  });
}

export function describeError(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  const cause = (error as { cause?: Error }).cause;
  const causeCode = cause ? (cause as NodeJS.ErrnoException).code : undefined;
  return [code, causeCode, cause?.message ?? error.message].filter(Boolean).join(": ");
}
