/**
 * The admin listener (PORTCULLIS_ADMIN_LISTEN): /metrics, /health, /ready and the live view. It is
 * its own server on its own address, never one of the API listeners, and it never forwards anything
 * to the daemon except its own `GET /_ping` for /ready.
 */
import { chmod, chown, rm } from "node:fs/promises";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net from "node:net";
import { describeListener, type ListenerSpec } from "../config/config.js";
import type { Upstream } from "../proxy/upstream.js";
import type { LiveView } from "./live.js";
import { LIVE_CSP, LIVE_CSS, LIVE_HTML, LIVE_JS } from "./live-page.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";

export interface AdminServer {
  /** Bound address, e.g. `admin=tcp://127.0.0.1:9375`. */
  readonly address: string;
  close(): Promise<void>;
}

export interface ReadyResult {
  readonly ready: boolean;
  readonly status?: number;
  readonly apiVersion?: string;
  readonly error?: string;
}

/** `GET /_ping` on the daemon through the upstream pool, bounded by `timeoutMs`. */
export async function probeDaemon(upstream: Upstream, timeoutMs = 2000): Promise<ReadyResult> {
  try {
    const res = await upstream.pool.request({
      path: "/_ping",
      method: "GET",
      headers: { host: "api.moby.localhost" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.body.text()).slice(0, 200);
    const apiVersion = res.headers["api-version"];
    return {
      ready: res.statusCode === 200,
      status: res.statusCode,
      ...(typeof apiVersion === "string" ? { apiVersion } : {}),
      ...(res.statusCode === 200 ? {} : { error: body }),
    };
  } catch (error) {
    const e = error as Error & { code?: string };
    return {
      ready: false,
      error: e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (e.code ?? e.message),
    };
  }
}

/**
 * The live view answers only to a Host that is an IP address or localhost: a web page elsewhere
 * cannot DNS-rebind its own name to the admin port and read the decisions.
 */
function localHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  return name === "localhost" || net.isIP(name) !== 0;
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: http.OutgoingHttpHeaders = {},
) {
  res.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-length": Buffer.byteLength(body),
    ...extra,
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

const json = (res: ServerResponse, status: number, value: unknown) =>
  send(res, status, "application/json", `${JSON.stringify(value)}\n`);

async function listen(server: http.Server, spec: ListenerSpec): Promise<string> {
  const bind = (arg: string | net.ListenOptions) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(arg, () => {
        server.off("error", reject);
        resolve();
      });
    });
  if (spec.kind === "unix") {
    await rm(spec.path, { force: true });
    await bind(spec.path);
    await chmod(spec.path, spec.mode);
    if (spec.uid !== undefined || spec.gid !== undefined)
      await chown(spec.path, spec.uid ?? -1, spec.gid ?? -1);
    return describeListener(spec);
  }
  await bind({ host: spec.host, port: spec.port, ipv6Only: false });
  const address = server.address();
  if (address === null || typeof address === "string") return describeListener(spec);
  return describeListener({ ...spec, host: address.address, port: address.port });
}

export async function startAdmin(options: {
  readonly spec: ListenerSpec;
  readonly upstream: Upstream;
  readonly metrics: Metrics;
  readonly live: LiveView;
  readonly logger: Logger;
}): Promise<AdminServer> {
  const { upstream, metrics, live, logger } = options;
  const server = http.createServer({
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    maxHeaderSize: 16 * 1024,
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(res, 405, "text/plain; charset=utf-8", "method not allowed: the admin listener is read-only\n", {
        allow: "GET, HEAD",
      });
      return;
    }
    switch (path) {
      case "/health":
        json(res, 200, { status: "ok", uptimeSeconds: Math.round(process.uptime()) });
        return;
      case "/ready":
        probeDaemon(upstream).then((r) => {
          metrics.daemonUp(r.ready);
          json(res, r.ready ? 200 : 503, r);
        });
        return;
      case "/metrics":
        metrics.registry.metrics().then(
          (text) => send(res, 200, metrics.registry.contentType, text),
          (error: Error) => send(res, 500, "text/plain; charset=utf-8", `metrics failed: ${error.message}\n`),
        );
        return;
    }
    const liveRoute = ["/", "/live", "/live.js", "/live.css", "/live/events", "/live/state"];
    if (!liveRoute.includes(path as string)) {
      send(res, 404, "text/plain; charset=utf-8", "not found: try /, /metrics, /health or /ready\n");
      return;
    }
    if (!localHost(req.headers.host)) {
      send(
        res,
        421,
        "text/plain; charset=utf-8",
        "the live view answers only to an IP address or localhost in Host (open it as http://127.0.0.1:PORT/ or through an SSH tunnel)\n",
      );
      return;
    }
    switch (path) {
      case "/":
      case "/live":
        send(res, 200, "text/html; charset=utf-8", LIVE_HTML, {
          "content-security-policy": LIVE_CSP,
          "referrer-policy": "no-referrer",
          "x-frame-options": "DENY",
        });
        return;
      case "/live.js":
        send(res, 200, "text/javascript; charset=utf-8", LIVE_JS);
        return;
      case "/live.css":
        send(res, 200, "text/css; charset=utf-8", LIVE_CSS);
        return;
      case "/live/state":
        json(res, 200, live.snapshot());
        return;
      case "/live/events":
        if (!live.subscribe(res)) send(res, 503, "text/plain; charset=utf-8", "too many live views open\n");
        return;
    }
  });
  server.on("clientError", (_error, socket) => socket.destroy());
  const address = await listen(server, options.spec);
  logger.info(
    { admin: address },
    `admin listener on ${address}: /metrics /health /ready and the live view at /`,
  );
  return {
    address,
    async close() {
      live.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
