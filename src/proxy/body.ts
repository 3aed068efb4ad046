/** Reads a request body that must be inspected before anything is forwarded, up to a cap. */
import type { IncomingMessage } from "node:http";

export type BodyRead =
  | { readonly ok: true; readonly body: Buffer }
  | { readonly ok: false; readonly status: 413 | 400; readonly message: string };

export function readBoundedBody(req: IncomingMessage, maxBytes: number): Promise<BodyRead> {
  const declared = req.headers["content-length"];
  const tooLarge = (n: string): BodyRead => ({
    ok: false,
    status: 413,
    message: `the request body (${n} bytes) is larger than the ${maxBytes}-byte limit for inspected bodies (PORTCULLIS_BODY_MAX_BYTES)`,
  });
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.resolve(tooLarge(declared));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyRead) => {
      if (done) return;
      done = true;
      req.off("data", onData);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        finish(tooLarge(`more than ${maxBytes}`));
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => finish({ ok: true, body: Buffer.concat(chunks) }));
    req.once("error", (error) =>
      finish({ ok: false, status: 400, message: `the request body could not be read: ${error.message}` }),
    );
    req.once("close", () =>
      finish({
        ok: false,
        status: 400,
        message: "the client closed the connection before sending the whole body",
      }),
    );
  });
}
