/**
 * The listeners. Every request, on every path Node can deliver it (request, upgrade, connect), goes
 * through the gate before anything reaches the daemon: listener -> canonical request -> decision ->
 * forward -> response.
 */
import { chmod, chown, rm } from "node:fs/promises";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { describeListener, type ListenerSpec, type ProxyConfig } from "../config/config.js";
import type { Logger } from "../observe/logger.js";
import { forward } from "./forward.js";
import type { Gate, GateResult } from "./gate.js";
import { hijackRequest, hijackUpgrade, wantsUpgrade } from "./hijack.js";
import { sendError, sendRawError } from "./respond.js";
import type { Upstream } from "./upstream.js";

export interface RunningProxy {
  /** Bound addresses, e.g. `tcp://127.0.0.1:2375`, in listener order. */
  readonly addresses: readonly string[];
  /** Stops accepting, lets open exchanges end for `graceMs`, then closes everything. */
  close(graceMs?: number): Promise<void>;
}

export interface ProxyDeps {
  readonly config: ProxyConfig;
  readonly gate: Gate;
  readonly upstream: Upstream;
  readonly logger: Logger;
}

interface Exchange {
  readonly listener: string;
  readonly client: string;
  readonly method: string;
  readonly target: string;
  readonly started: number;
}

function logDecision(
  logger: Logger,
  ex: Exchange,
  result: GateResult,
  status: number,
  extra: object = {},
): void {
  if (result.verdict === "deny") {
    logger.warn(
      {
        listener: ex.listener,
        client: ex.client,
        method: ex.method,
        target: ex.target,
        operation: result.operation,
        decision: "deny",
        reason: result.reason,
        status,
      },
      result.message,
    );
    return;
  }
  if (!logger.isLevelEnabled("debug")) return;
  logger.debug(
    {
      listener: ex.listener,
      client: ex.client,
      method: ex.method,
      target: ex.target,
      operation: result.match.route.operation,
      decision: "allow",
      rule: result.decision.rule,
      status,
      ms: Date.now() - ex.started,
      ...extra,
    },
    "request",
  );
}

function clientOf(socket: Socket | Duplex): string {
  const s = socket as Socket;
  return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : "unix";
}

const CLIENT_ERRORS: Readonly<Record<string, [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, "request head is larger than the limit (PORTCULLIS_MAX_HEADER_BYTES)"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "request head was not completed in time (PORTCULLIS_HEADERS_TIMEOUT_MS)"],
  HPE_HEADERS_TIMEOUT: [408, "request head was not completed in time (PORTCULLIS_HEADERS_TIMEOUT_MS)"],
};

function createListenerServer(spec: ListenerSpec, deps: ProxyDeps, sockets: Set<Duplex>): http.Server {
  const { config, gate, upstream, logger } = deps;
  const listener = describeListener(spec);
  const server = http.createServer({
    maxHeaderSize: config.limits.maxHeaderBytes,
    requestTimeout: 0,
    headersTimeout: config.limits.headersTimeoutMs,
    keepAliveTimeout: config.limits.keepAliveTimeoutMs,
    insecureHTTPParser: false,
  });
  server.timeout = 0;

  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const ex: Exchange = {
      listener,
      client: clientOf(req.socket),
      method: req.method as string,
      target: req.url as string,
      started: Date.now(),
    };
    const result = gate.check(ex.method, ex.target);
    if (result.verdict === "deny") {
      // A body we will not read must not be parsed as the next request: close after answering.
      const hasBody =
        req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
      sendError(res, result.status, result.message, hasBody);
      logDecision(logger, ex, result, result.status);
      return;
    }
    if (result.match.route.kind === "hijack" && result.match.route.operation !== "ContainerAttachWebsocket") {
      hijackRequest(req, {
        upstream,
        route: result.match.route,
        maxBodyBytes: config.limits.hijackBodyMaxBytes,
      }).then((outcome) => logDecision(logger, ex, result, outcome.status, { tunnelled: outcome.tunnelled }));
      return;
    }
    forward(req, res, upstream).then((outcome) =>
      logDecision(logger, ex, result, outcome.status, outcome.error ? { error: outcome.error.message } : {}),
    );
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const ex: Exchange = {
      listener,
      client: clientOf(socket),
      method: req.method as string,
      target: req.url as string,
      started: Date.now(),
    };
    const result = gate.check(ex.method, ex.target);
    if (result.verdict === "deny") {
      sendRawError(socket, result.status, result.message);
      logDecision(logger, ex, result, result.status);
      return;
    }
    if (result.match.route.kind !== "hijack" || !wantsUpgrade(req)) {
      const message = `portcullis refused ${result.match.route.operation}: Connection: Upgrade is only accepted on attach, exec start, attach/ws, session and grpc; send this request without it`;
      sendRawError(socket, 400, message);
      logDecision(
        logger,
        ex,
        {
          verdict: "deny",
          status: 400,
          message,
          reason: "bad-target",
          operation: result.match.route.operation,
        },
        400,
      );
      return;
    }
    hijackUpgrade(req, socket, head, {
      upstream,
      route: result.match.route,
      maxBodyBytes: config.limits.hijackBodyMaxBytes,
    }).then((outcome) => logDecision(logger, ex, result, outcome.status, { tunnelled: outcome.tunnelled }));
  });

  server.on("connect", (req: IncomingMessage, socket: Duplex) => {
    sendRawError(
      socket,
      400,
      `portcullis refused CONNECT ${req.url ?? ""}: CONNECT is not a Docker API method`,
    );
  });

  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    const [status, message] = CLIENT_ERRORS[error.code ?? ""] ?? [
      400,
      `malformed HTTP request (${error.code ?? error.message})`,
    ];
    logger.warn({ listener, client: clientOf(socket), status, code: error.code }, message);
    if ((socket as Socket).writable && (socket as Socket).bytesWritten === 0)
      sendRawError(socket, status, message);
    else socket.destroy();
  });
  return server;
}

async function listen(server: http.Server, spec: ListenerSpec): Promise<string> {
  if (spec.kind === "unix") {
    await rm(spec.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(spec.path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    await chmod(spec.path, spec.mode);
    if (spec.uid !== undefined || spec.gid !== undefined)
      await chown(spec.path, spec.uid ?? -1, spec.gid ?? -1);
    return `unix://${spec.path}`;
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: spec.host, port: spec.port, ipv6Only: false }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") return describeListener(spec);
  return describeListener({ kind: "tcp", host: address.address, port: address.port });
}

export async function startProxy(deps: ProxyDeps): Promise<RunningProxy> {
  const sockets = new Set<Duplex>();
  const servers: http.Server[] = [];
  const addresses: string[] = [];
  try {
    for (const spec of deps.config.listeners) {
      const server = createListenerServer(spec, deps, sockets);
      servers.push(server);
      addresses.push(await listen(server, spec));
    }
  } catch (error) {
    for (const s of servers) s.close();
    throw error;
  }
  return {
    addresses,
    async close(graceMs = deps.config.shutdownGraceMs) {
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      for (const s of servers) s.closeIdleConnections();
      const deadline = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      await Promise.all(closed);
      clearTimeout(deadline);
      for (const socket of sockets) socket.destroy();
      await deps.upstream.close();
    },
  };
}
