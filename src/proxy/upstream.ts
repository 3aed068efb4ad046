/** The Docker daemon end: a keep-alive pool for ordinary requests and fresh sockets for hijacks. */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import tls from "node:tls";
import type { Pool as PoolType } from "undici";
import { describeUpstream, type UpstreamSpec } from "../config/config.js";
import { DaemonPool } from "./lane/daemon-pool.js";

// Only the Pool and the request APIs, not undici's index: the index also loads fetch, WebSocket, the
// cache and cookies, and its cookies module reads globalThis.Headers, which makes Node load its own
// bundled undici as well. Loaded on first use: the fast lane (src/proxy/lane) serves plain requests
// without it. Measured by `npm run bench` (docs/benchmarks.md): start-up and idle RSS.
// undici is pinned to an exact version in package.json, so these paths cannot move under us.
const require = createRequire(import.meta.url);
type Pool = PoolType;

function loadPool(): typeof PoolType {
  const Dispatcher: { prototype: object } = require("undici/lib/dispatcher/dispatcher.js");
  // what undici's index does for every dispatcher (request, stream, pipeline, upgrade, connect)
  if (!("request" in Dispatcher.prototype))
    Object.assign(Dispatcher.prototype, require("undici/lib/api/index.js"));
  return require("undici/lib/dispatcher/pool.js");
}

/**
 * Bytes a socket buffers before write() asks the writer to wait (both ends of every relay). Node's
 * 16 KiB default is smaller than one 64 KiB read, so every bulk chunk paused and resumed the source
 * socket (two epoll_ctl calls and a tick); at 256 KiB a steady relay runs without stopping.
 */
export const SOCKET_BUFFER_BYTES = 256 * 1024;

export interface Upstream {
  /** undici pool for the Node path (bodies, views, lookups); created on first use. */
  readonly pool: Pool;
  readonly description: string;
  /** Raw keep-alive daemon connections for the fast lane (src/proxy/lane). */
  readonly lanePool: DaemonPool;
  /** The Host header a request that came without one is sent with. */
  readonly hostHeader: string;
  /** A new dedicated connection (never pooled): for hijacked and upgraded requests. */
  connect(): net.Socket;
  close(): Promise<void>;
}

function tlsOptions(spec: Extract<UpstreamSpec, { kind: "tcp" }>): tls.ConnectionOptions | undefined {
  if (!spec.tls) return undefined;
  const read = (p: string | undefined) => {
    if (p === undefined) return undefined;
    try {
      return readFileSync(p);
    } catch {
      return undefined;
    }
  };
  return {
    ca: read(spec.tls.ca),
    cert: read(spec.tls.cert),
    key: read(spec.tls.key),
    rejectUnauthorized: spec.tls.verify,
    servername: net.isIP(spec.host) ? undefined : spec.host,
  };
}

/**
 * `connections`: null = no cap. A long-lived stream (events, logs -f, wait) holds its daemon
 * connection for its whole life, so any cap is also a cap on concurrent streams: with 128, the
 * 129th `GET /events` subscriber queued forever (found by `npm run bench`, 1,000 subscribers).
 */
export function createUpstream(spec: UpstreamSpec, connections: number | null = null): Upstream {
  const tlsOpts = spec.kind === "tcp" ? tlsOptions(spec) : undefined;
  const origin =
    spec.kind === "unix"
      ? "http://localhost"
      : `${tlsOpts ? "https" : "http"}://${spec.host.includes(":") ? `[${spec.host}]` : spec.host}:${spec.port}`;
  let pool: Pool | undefined;
  const makePool = (): Pool => {
    const Pool = loadPool();
    return new Pool(origin, {
      connections,
      pipelining: 1,
      // Streams (events, logs -f, wait, pulls) may be silent for hours: the daemon is trusted to end them.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
      ...(spec.kind === "unix" ? { socketPath: spec.socketPath } : {}),
      ...(tlsOpts ? { connect: tlsOpts } : {}),
    });
  };
  const connect = (onread?: net.OnReadOpts): net.Socket => {
    const options = {
      allowHalfOpen: true,
      highWaterMark: SOCKET_BUFFER_BYTES,
      ...(onread ? { onread } : {}),
    };
    if (spec.kind === "unix") return net.connect({ path: spec.socketPath, ...options });
    if (tlsOpts) return tls.connect({ host: spec.host, port: spec.port, ...tlsOpts, ...options });
    return net.connect({ host: spec.host, port: spec.port, ...options });
  };
  const lanePool = new DaemonPool(connect, tlsOpts === undefined);
  return {
    get pool() {
      pool ??= makePool();
      return pool;
    },
    lanePool,
    hostHeader: new URL(origin).host,
    description: describeUpstream(spec),
    connect,
    async close() {
      lanePool.close();
      await pool?.destroy();
    },
  };
}
