/** What crosses the proxy, against a fake daemon that records every request it gets. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type TestProxy } from "../helpers/proxy.js";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

describe("forwarding to the daemon", () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-fwd-"));
  const seen: Seen[] = [];
  let releaseBody: () => void = () => {};
  const daemon = http.createServer((req, res) => {
    seen.push({ method: req.method as string, url: req.url as string, headers: req.headers });
    if (req.url?.startsWith("/v1.41/containers/json")) {
      res.writeHead(301, { Location: "/v1.41/secrets", "Content-Length": "0" });
      res.end();
    } else if (req.url?.startsWith("/v1.41/events")) {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.flushHeaders();
      releaseBody = () => res.end('{"status":"late"}\n');
    } else {
      res.writeHead(200, {
        "Content-Type": "application/json",
        Connection: "close, X-Hop",
        "Keep-Alive": "timeout=5",
        "X-Hop": "drop me",
        "Api-Version": "1.41",
      });
      res.end("{}");
    }
  });
  let proxy: TestProxy;

  before(async () => {
    await new Promise<void>((resolve) => daemon.listen(join(dir, "daemon.sock"), resolve));
    proxy = await startProxy(join(dir, "daemon.sock"), { CONTAINERS: "1" });
  });
  after(async () => {
    await proxy.stop();
    daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<http.IncomingMessage & { text: string }>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: proxy.port, path, headers }, (res) => {
          let text = "";
          res.on("data", (c) => {
            text += c;
          });
          res.on("end", () => resolve(Object.assign(res, { text })));
        })
        .on("error", reject);
    });

  it("passes an upstream redirect to the client instead of following it", async () => {
    seen.length = 0;
    const res = await get("/v1.41/containers/json");
    assert.equal(res.statusCode, 301);
    assert.equal(res.headers.location, "/v1.41/secrets");
    assert.deepEqual(
      seen.map((s) => s.url),
      ["/v1.41/containers/json"],
    );
  });

  it("strips hop-by-hop headers and credentials on the way in", async () => {
    seen.length = 0;
    await get("/v1.41/version", {
      Connection: "keep-alive, X-Private",
      "X-Private": "hop",
      "Proxy-Authorization": "Basic eDp5",
      Authorization: "Bearer secret",
      TE: "trailers",
      "X-Registry-Auth": "end-to-end",
    });
    const h = seen[0]?.headers ?? {};
    for (const name of ["x-private", "proxy-authorization", "authorization", "te"])
      assert.equal(h[name], undefined, name);
    assert.equal(h["x-registry-auth"], "end-to-end");
  });

  it("strips hop-by-hop headers on the way out and keeps the daemon's own", async () => {
    const res = await get("/v1.41/version");
    assert.equal(res.headers["x-hop"], undefined);
    assert.equal(res.headers["keep-alive"] === "timeout=5", false);
    assert.equal(res.headers["api-version"], "1.41");
  });

  it("sends a stream's headers before the daemon writes any body", async () => {
    const headersArrived = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: proxy.port, path: "/v1.41/events" }, (res) => {
          // The daemon has not written a byte of body yet: it waits for this very callback.
          resolve(res.statusCode ?? 0);
          releaseBody();
          res.resume();
        })
        .on("error", reject);
    });
    assert.equal(headersArrived, 200);
  });
});
