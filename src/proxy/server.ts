/**
 * The listeners. Every request, on every path Node can deliver it (request, upgrade, connect), goes
 * through the gate before anything reaches the daemon: listener -> canonical request -> decision ->
 * forward -> response.
 */
import { readFileSync } from "node:fs";
import { chmod, chown, rm } from "node:fs/promises";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { describeListener, type ListenerSpec, type ProxyConfig } from "../config/config.js";
import type { Logger } from "../observe/logger.js";
import type { Observer } from "../observe/observer.js";
import type { BodyInspector, BodyVerdict } from "../policy/policy.js";
import { readBoundedBody } from "./body.js";
import { createDaemonLookup } from "./daemon-lookup.js";
import { type ByteLedger, clientContext, type Exchange, exchange, observe, peerOf } from "./exchange.js";
import { forward } from "./forward.js";
import type { Gate, GateResult } from "./gate.js";
import { hijackRequest, hijackUpgrade, wantsUpgrade } from "./hijack.js";
import { LaneConnection, type LaneDeps, type LaneState } from "./lane/fast-lane.js";
import { printableTarget, sendError, sendRawError } from "./respond.js";
import { refuseTunnel, sendRefusal, viewChecked, viewForward } from "./response-filter.js";
import { SOCKET_BUFFER_BYTES, type Upstream } from "./upstream.js";

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
  /** Receives one record per decision (audit log, metrics, live view). */
  readonly observer: Observer;
}

const CLIENT_ERRORS: Readonly<Record<string, [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, "request head is larger than the limit (PORTCULLIS_MAX_HEADER_BYTES)"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "request head was not completed in time (PORTCULLIS_HEADERS_TIMEOUT_MS)"],
  HPE_HEADERS_TIMEOUT: [408, "request head was not completed in time (PORTCULLIS_HEADERS_TIMEOUT_MS)"],
};

/** Socket errors Node hands to `clientError`: the client closed or reset the connection. */
const CLIENT_GONE: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT"]);

function createHttpServer(spec: ListenerSpec, config: ProxyConfig): http.Server {
  const options: http.ServerOptions = {
    maxHeaderSize: config.limits.maxHeaderBytes,
    requestTimeout: 0,
    headersTimeout: config.limits.headersTimeoutMs,
    // How often Node looks for heads past headersTimeout (default 30 s: a slow head would get up to
    // twice its time). Connections that never send a byte are caught by the same check.
    connectionsCheckingInterval: 1000,
    keepAliveTimeout: config.limits.keepAliveTimeoutMs,
    insecureHTTPParser: false,
    highWaterMark: SOCKET_BUFFER_BYTES,
  };
  if (spec.tls === undefined) return http.createServer(options);
  return https.createServer({
    ...options,
    cert: readFileSync(spec.tls.cert),
    key: readFileSync(spec.tls.key),
    ...(spec.tls.clientCa
      ? { ca: readFileSync(spec.tls.clientCa), requestCert: true, rejectUnauthorized: true }
      : {}),
    minVersion: "TLSv1.2",
  });
}

function createListenerServer(
  spec: ListenerSpec,
  deps: ProxyDeps,
  sockets: Set<Duplex>,
  laneState: LaneState,
): http.Server {
  const { config, gate, upstream, logger, observer } = deps;
  const listener = spec.name ?? "default";
  const server = createHttpServer(spec, config);
  server.timeout = 0;
  // Node keeps only the first ~1,000 header fields and drops the rest without a word (a Content-Length
  // or Authorization among them): collect them all (PORTCULLIS_MAX_HEADER_BYTES bounds them) and refuse
  // a request with more than PORTCULLIS_MAX_HEADER_COUNT instead.
  server.maxHeadersCount = 0;
  // Over the limit, Node closes a new connection as soon as it is accepted, before reading anything.
  server.maxConnections = config.limits.maxConnections;
  let dropped = 0;
  let dropLoggedAt = 0;
  server.on("drop", (data) => {
    dropped++;
    if (Date.now() - dropLoggedAt < 1000) return;
    dropLoggedAt = Date.now();
    logger.warn(
      { listener, peer: data?.remoteAddress ? `${data.remoteAddress}:${data.remotePort}` : "unix", dropped },
      `connection closed unanswered: the listener already has ${config.limits.maxConnections} open connections (PORTCULLIS_MAX_CONNECTIONS); ${dropped} closed so far`,
    );
  });
  const tooManyHeaders = (req: IncomingMessage, peer: string): string | undefined => {
    const count = req.rawHeaders.length / 2;
    if (count <= config.limits.maxHeaderCount) return undefined;
    const message = `request has ${count} header fields, more than the limit of ${config.limits.maxHeaderCount} (PORTCULLIS_MAX_HEADER_COUNT)`;
    logger.warn({ listener, peer, status: 431, headers: count }, message);
    return message;
  };
  /** Connections taken over by a hijack from the `request` event (attach or exec start without Upgrade). */
  const hijacked = new WeakSet<object>();
  const daemon = createDaemonLookup(upstream);
  const counted: ByteLedger = new WeakMap();

  // Every connection starts in the fast lane, which hands it to Node's own connection handler (and
  // so to the request/upgrade/connect handlers below) at the first request it does not relay itself.
  const connectionEvent = spec.tls ? "secureConnection" : "connection";
  const nodeConnection = server.listeners(connectionEvent)[0] as (socket: Duplex) => void;
  server.removeListener(connectionEvent, nodeConnection);
  const lane: LaneDeps = {
    listener,
    gate,
    observer,
    pool: upstream.lanePool,
    daemon: upstream.description,
    hostHeader: upstream.hostHeader,
    keepAliveTail: Buffer.from(
      config.limits.keepAliveTimeoutMs > 0
        ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(config.limits.keepAliveTimeoutMs / 1000)}\r\n\r\n`
        : "Connection: keep-alive\r\n\r\n",
      "latin1",
    ),
    limits: {
      maxHeadBytes: config.limits.maxHeaderBytes,
      maxHeaderCount: config.limits.maxHeaderCount,
      headersTimeoutMs: config.limits.headersTimeoutMs,
      keepAliveTimeoutMs: config.limits.keepAliveTimeoutMs,
    },
    counted,
    state: laneState,
    handOver(socket, unread) {
      if (unread !== null) socket.unshift(unread);
      nodeConnection.call(server, socket);
    },
    headTimeout(socket) {
      const error: NodeJS.ErrnoException = new Error("request head not received in time");
      error.code = "ERR_HTTP_REQUEST_TIMEOUT";
      server.emit("clientError", error, socket);
    },
  };
  server.on(connectionEvent, (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    new LaneConnection(socket, lane);
  });

  /** Reads the whole body (bounded), applies the profile's body rules, then forwards the checked bytes. */
  const inspectThenForward = async (
    req: IncomingMessage,
    res: ServerResponse,
    ex: Exchange,
    result: Extract<GateResult, { verdict: "allow" }>,
    inspector: BodyInspector,
  ): Promise<void> => {
    const operation = result.match.route.operation;
    const shown = `${operation} (${ex.method} ${printableTarget(result.target.path)})`;
    const refuse = (status: number, message: string, rule: string) => {
      sendError(res, status, message, true);
      const denied: GateResult = {
        ...result,
        verdict: "deny",
        status,
        message,
        reason: "body",
        operation,
        decision: { allow: false, rule },
      };
      observe(observer, ex, denied, status);
    };
    const read = await readBoundedBody(req, config.limits.bodyMaxBytes);
    if (!read.ok) {
      refuse(read.status, `portcullis refused ${shown}: ${read.message}`, "body.size");
      return;
    }
    let verdict: BodyVerdict;
    try {
      verdict = await inspector.check(
        {
          method: ex.method,
          rawTarget: ex.target,
          match: result.match,
          contentType: req.headers["content-type"],
        },
        read.body,
        daemon,
      );
    } catch (error) {
      // Fail closed and visibly: a body that could not be checked is not forwarded.
      logger.error({ err: error, target: ex.target }, "body inspection failed");
      refuse(502, `portcullis could not check ${shown}: ${(error as Error).message}`, "body.error");
      return;
    }
    if (!verdict.ok) {
      refuse(
        verdict.status,
        `portcullis ${verdict.status === 403 ? "denied" : "refused"} ${shown}: ${verdict.message}`,
        verdict.rule,
      );
      return;
    }
    const forwarded: GateResult = verdict.audit
      ? { ...result, decision: { ...result.decision, audited: true, rule: verdict.audit.rule } }
      : result;
    const outcome = await forward(req, res, upstream, verdict.body);
    if (outcome.status === 502) observer.upstreamError?.();
    observe(observer, ex, forwarded, outcome.status, outcome.error ? { error: outcome.error.message } : {});
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const ex = exchange(listener, req.socket, req.method as string, req.url as string, counted);
    if (hijacked.has(req.socket)) {
      // Node parsed this out of bytes pipelined behind a hijacked request; dockerd reads such bytes
      // as the stream, never as a request: it is neither forwarded nor answered.
      logger.warn(
        {
          listener,
          peer: ex.peer,
          method: ex.method,
          target: ex.target,
          decision: "deny",
          reason: "pipelined-after-hijack",
        },
        `portcullis refused ${ex.method} ${printableTarget(ex.target)}: it was pipelined behind a hijacked request on the same connection`,
      );
      return;
    }
    const overCount = tooManyHeaders(req, ex.peer);
    if (overCount !== undefined) {
      sendError(res, 431, overCount, true);
      return;
    }
    const result = gate.check(
      ex.method,
      ex.target,
      clientContext(listener, req.socket, req.headers.authorization),
      req.headers["content-type"],
    );
    if (result.verdict === "deny") {
      // A body we will not read must not be parsed as the next request: close after answering.
      const hasBody =
        req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
      sendError(res, result.status, result.message, hasBody);
      observe(observer, ex, result, result.status);
      return;
    }
    if (result.match.route.kind === "hijack" && result.match.route.operation !== "ContainerAttachWebsocket") {
      // From here on this connection carries the hijacked stream: nothing after it is a request.
      hijacked.add(req.socket);
      viewChecked(
        result,
        req,
        upstream,
        (r) =>
          hijackRequest(r, {
            upstream,
            route: result.match.route,
            maxBodyBytes: config.limits.hijackBodyMaxBytes,
          }),
        refuseTunnel(res),
      ).then((outcome) => {
        observer.streamClosed?.("tunnel");
        observe(observer, ex, result, outcome.status, {
          tunnelled: outcome.tunnelled,
          ...(outcome.error ? { error: outcome.error } : {}),
        });
      });
      observer.streamOpened?.("tunnel");
      return;
    }
    const inspector = result.profileRules.body;
    if (inspector?.inspects(result.match.route.operation)) {
      viewChecked(
        result,
        req,
        upstream,
        (r) => inspectThenForward(r, res, ex, result, inspector),
        (refusal) => {
          sendRefusal(res, refusal, true);
          observe(observer, ex, result, refusal.status);
        },
      );
      return;
    }
    const streaming = result.match.route.kind === "stream";
    if (streaming) observer.streamOpened?.("stream");
    viewForward(result, req, res, upstream, (r) => forward(r, res, upstream)).then((outcome) => {
      if (streaming) observer.streamClosed?.("stream");
      if (outcome.status === 502) observer.upstreamError?.();
      observe(observer, ex, result, outcome.status, outcome.error ? { error: outcome.error.message } : {});
    });
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const ex = exchange(listener, socket, req.method as string, req.url as string, counted);
    const overCount = tooManyHeaders(req, ex.peer);
    if (overCount !== undefined) {
      sendRawError(socket, 431, overCount);
      return;
    }
    const result = gate.check(
      ex.method,
      ex.target,
      clientContext(listener, socket, req.headers.authorization),
      req.headers["content-type"],
    );
    if (result.verdict === "deny") {
      sendRawError(socket, result.status, result.message);
      observe(observer, ex, result, result.status);
      return;
    }
    if (result.match.route.kind !== "hijack" || !wantsUpgrade(req)) {
      const message = `portcullis refused ${result.match.route.operation}: Connection: Upgrade is only accepted on attach, exec start, attach/ws, session and grpc; send this request without it`;
      sendRawError(socket, 400, message);
      const refused: GateResult = {
        ...result,
        verdict: "deny",
        status: 400,
        message,
        reason: "bad-target",
        operation: result.match.route.operation,
      };
      observe(observer, ex, refused, 400);
      return;
    }
    viewChecked(
      result,
      req,
      upstream,
      (r) =>
        hijackUpgrade(r, socket, head, {
          upstream,
          route: result.match.route,
          maxBodyBytes: config.limits.hijackBodyMaxBytes,
        }),
      refuseTunnel(socket),
    ).then((outcome) => {
      observer.streamClosed?.("tunnel");
      if (outcome.status === 502) observer.upstreamError?.();
      observe(observer, ex, result, outcome.status, {
        tunnelled: outcome.tunnelled,
        ...(outcome.error ? { error: outcome.error } : {}),
      });
    });
    observer.streamOpened?.("tunnel");
  });

  server.on("connect", (req: IncomingMessage, socket: Duplex) => {
    sendRawError(
      socket,
      400,
      `portcullis refused CONNECT ${printableTarget(req.url ?? "")}: CONNECT is not a Docker API method`,
    );
  });

  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (CLIENT_GONE.has(error.code ?? "")) {
      // Node reports a client's reset here too: not a malformed request, and nobody left to answer.
      logger.debug({ listener, peer: peerOf(socket), code: error.code }, `client went away (${error.code})`);
      socket.destroy();
      return;
    }
    const [status, message] = CLIENT_ERRORS[error.code ?? ""] ?? [
      400,
      `malformed HTTP request (${error.code ?? error.message})`,
    ];
    logger.warn({ listener, peer: peerOf(socket), status, code: error.code }, message);
    if ((socket as Socket).writable && (socket as Socket).bytesWritten === 0)
      sendRawError(socket, status, message);
    else socket.destroy();
  });
  server.on("tlsClientError", (error: Error, socket: Duplex) => {
    logger.warn({ listener, peer: peerOf(socket) }, `TLS handshake failed: ${error.message}`);
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
    return describeListener(spec);
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
  return describeListener({ ...spec, host: address.address, port: address.port });
}

export async function startProxy(deps: ProxyDeps): Promise<RunningProxy> {
  const sockets = new Set<Duplex>();
  const laneState: LaneState = { closing: false, idle: new Set() };
  const servers: http.Server[] = [];
  const addresses: string[] = [];
  try {
    for (const spec of deps.config.listeners) {
      const server = createListenerServer(spec, deps, sockets, laneState);
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
      laneState.closing = true;
      for (const connection of laneState.idle) connection.endIdle();
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
