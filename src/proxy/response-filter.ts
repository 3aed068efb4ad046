/**
 * The response side of a profile's view: lists filtered, inspects of hidden objects answered 404,
 * redacted fields removed, and `/events` filtered event by event while it streams. server.ts hands
 * every allowed request to viewForward (or, for hijacks and body-inspected requests, viewChecked);
 * without a view they go straight on, and what is not rewritten here still takes the normal forward.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Duplex, Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Profile, ViewFilter } from "../policy/policy.js";
import type { CanonicalTarget } from "../routing/canonical.js";
import type { RouteMatch } from "../routing/match.js";
import type { ForwardOutcome } from "./forward.js";
import { endToEndRequestHeaders, endToEndResponseHeaders } from "./headers.js";
import { errorBody, sendRawError } from "./respond.js";
import type { Upstream } from "./upstream.js";
import {
  containerNames,
  imageNames,
  type ListKind,
  type ObjectKind,
  REDACTED_OPERATIONS,
  VIEW_ROLES,
} from "./view.js";
import {
  daemonGet,
  notFoundMessage,
  type Precheck,
  precheck,
  type Refusal,
  Resolver,
  readBounded,
  ViewBodyTooLarge,
} from "./visibility.js";

/** What server.ts knows of an allowed request (the gate's allow result). */
export interface ViewedRequest {
  readonly profileRules: Profile;
  readonly match: RouteMatch;
  readonly target: CanonicalTarget;
}

/** The outcome of a hijack (as hijack.ts reports it). */
export interface TunnelLike {
  readonly status: number;
  readonly tunnelled: boolean;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly error?: string;
}

/** Longest single event record accepted from the daemon (events are a few KiB). */
export const MAX_EVENT_BYTES = 1024 * 1024;
/** Objects remembered per events stream. */
const EVENT_CACHE_ENTRIES = 10_000;

const hasBody = (req: IncomingMessage) =>
  req.headers["transfer-encoding"] !== undefined ||
  (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");

/** Sends a refusal in Docker's error format, keeping the daemon's own headers when given. */
export function sendRefusal(res: ServerResponse, refusal: Refusal, close: boolean): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(refusal.message);
  const headers: string[] = [];
  const kept = refusal.headers ?? [];
  for (let i = 0; i < kept.length; i += 2) {
    const name = (kept[i] as string).toLowerCase();
    if (name === "content-length" || name === "content-type" || name === "connection") continue;
    headers.push(kept[i] as string, kept[i + 1] as string);
  }
  headers.push("Content-Type", "application/json", "Content-Length", String(body.length));
  if (close) headers.push("Connection", "close");
  res.writeHead(refusal.status, headers);
  res.end(body);
}

/** A stand-in for `req` whose body is `body` (already read for the check): forwarded as read. */
function replay(req: IncomingMessage, body: Buffer): IncomingMessage {
  const stream = Readable.from([body], { objectMode: false });
  return Object.assign(stream, {
    method: req.method,
    url: req.url,
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    socket: req.socket,
    httpVersion: req.httpVersion,
  }) as unknown as IncomingMessage;
}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { cause?: Error };
  return [e.code, e.cause?.message ?? e.message].filter(Boolean).join(": ");
}

/**
 * Forwards an allowed request, through the allowing profile's view when it has one (else `send(req)`
 * at once). `send` is the normal forward, used for every operation whose answer is not rewritten;
 * it gets the request to forward: its target may be pinned to an object ID, its body replayed from
 * what the check read.
 */
export async function viewForward(
  result: ViewedRequest,
  req: IncomingMessage,
  res: ServerResponse,
  upstream: Upstream,
  send: (req: IncomingMessage) => Promise<ForwardOutcome>,
): Promise<ForwardOutcome> {
  const view = result.profileRules.view;
  if (view === undefined) return send(req);
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.once("close", onClose);
  try {
    let checked: Precheck;
    try {
      checked = await precheck(view, upstream, req, result.match, result.target, abort.signal);
    } catch (error) {
      return failed(res, error, upstream, abort.signal);
    }
    if (!checked.ok) {
      // A body left unread must not be parsed as the next request: close after answering.
      sendRefusal(res, checked, hasBody(req) && !req.readableEnded);
      return { status: checked.status };
    }
    const forwarded = pinned(req, checked);
    const operation = result.match.route.operation;
    const role = VIEW_ROLES[operation];
    const filtering = view.visibility !== undefined;
    if (filtering && role?.role === "events")
      return await streamEvents(view, forwarded, res, upstream, abort);
    const rewrite =
      (filtering &&
        (role?.role === "list" || (role?.role === "object" && role.decidesFromAnswer === true))) ||
      (view.redact.length > 0 && REDACTED_OPERATIONS.has(operation));
    if (!rewrite) return await send(forwarded);
    return await bufferedAnswer(view, forwarded, res, upstream, result, abort);
  } finally {
    res.off("close", onClose);
  }
}

/** The request to forward after a passed check: pinned to the checked object, its body replayed if it was read. */
function pinned(req: IncomingMessage, checked: Extract<Precheck, { ok: true }>): IncomingMessage {
  if (checked.target !== undefined) req.url = checked.target;
  return checked.body !== undefined ? replay(req, checked.body) : req;
}

/**
 * For paths that do not go through viewForward (hijacks, body-inspected requests): runs `go` once
 * the view allows the request (at once without visibility), else `refused` with the answer to give.
 */
export async function viewChecked<T>(
  result: ViewedRequest,
  req: IncomingMessage,
  upstream: Upstream,
  go: (req: IncomingMessage) => Promise<T> | T,
  refused: (refusal: Refusal) => T,
): Promise<T> {
  const view = result.profileRules.view;
  if (view?.visibility === undefined) return go(req);
  let checked: Precheck;
  try {
    checked = await precheck(view, upstream, req, result.match, result.target);
  } catch (error) {
    return refused({
      status: 502,
      message: `portcullis could not reach the Docker daemon at ${upstream.description}: ${describe(error)}`,
    });
  }
  if (!checked.ok) return refused(checked);
  return go(pinned(req, checked));
}

/** A refused hijack, answered on the response (request path) or the raw socket (upgrade path). */
export function refuseTunnel(on: ServerResponse | Duplex): (refusal: Refusal) => TunnelLike {
  return (refusal) => {
    if ("writeHead" in on) sendRefusal(on, refusal, true);
    else sendRawError(on, refusal.status, refusal.message);
    return { status: refusal.status, tunnelled: false, bytesIn: 0, bytesOut: 0 };
  };
}

function failed(
  res: ServerResponse,
  error: unknown,
  upstream: Upstream,
  signal: AbortSignal,
): ForwardOutcome {
  const err = error instanceof Error ? error : new Error(String(error));
  if (signal.aborted) return { status: 499, error: err };
  const message =
    error instanceof ViewBodyTooLarge
      ? `portcullis could not filter the daemon's answer: ${err.message}`
      : `portcullis could not reach the Docker daemon at ${upstream.description}: ${describe(err)}`;
  sendRefusal(res, { status: 502, message }, true);
  return { status: 502, error: err };
}

/** The daemon's answer read whole, decided, filtered and redacted, then sent with a new Content-Length. */
async function bufferedAnswer(
  view: ViewFilter,
  req: IncomingMessage,
  res: ServerResponse,
  upstream: Upstream,
  request: ViewedRequest,
  abort: AbortController,
): Promise<ForwardOutcome> {
  const withBody = hasBody(req);
  let status = 0;
  let headers: string[];
  let body: Buffer;
  try {
    const answer = await upstream.pool.request({
      method: req.method as "GET",
      path: req.url as string,
      headers: endToEndRequestHeaders(req.rawHeaders, { keepContentLength: withBody }),
      body: withBody ? req : null,
      signal: abort.signal,
    });
    status = answer.statusCode;
    headers = endToEndResponseHeaders(answer.headers as Record<string, string | string[]>);
    try {
      body = await readBounded(answer.body);
    } catch (error) {
      answer.body.destroy();
      throw error;
    }
  } catch (error) {
    return failed(res, error, upstream, abort.signal);
  }
  const operation = request.match.route.operation;
  if (status !== 200 || req.method === "HEAD" || body.length === 0) return send(res, status, headers, body);
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    sendRefusal(
      res,
      { status: 502, message: `portcullis could not read the daemon's answer to ${operation} as JSON` },
      true,
    );
    return { status: 502 };
  }
  const role = VIEW_ROLES[operation];
  try {
    if (view.visibility !== undefined && role?.role === "list") {
      json = await filterList(view, role.kind, json, upstream, abort.signal);
    } else if (view.visibility !== undefined && role?.role === "object" && role.decidesFromAnswer) {
      const resolver = new Resolver(upstream, view, abort.signal);
      const decided = await resolver.fromAnswer(role.kind, json);
      if (!decided.visible) {
        const ref = request.match.params[role.param] ?? "";
        sendRefusal(
          res,
          { status: 404, message: notFoundMessage(role.kind, ref, operation), headers },
          false,
        );
        return { status: 404 };
      }
      if (operation === "NetworkInspect") await hideNetworkMembers(view, json, upstream, abort.signal);
    }
  } catch (error) {
    return failed(res, error, upstream, abort.signal);
  }
  view.redactAnswer(operation, json);
  return send(res, status, headers, Buffer.from(`${JSON.stringify(json)}\n`, "utf8"));
}

function send(res: ServerResponse, status: number, headers: string[], body: Buffer): ForwardOutcome {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === "content-length") continue;
    out.push(headers[i] as string, headers[i + 1] as string);
  }
  out.push("Content-Length", String(body.length));
  res.writeHead(status, out);
  res.end(body);
  return { status };
}

const get = (o: unknown, key: string): unknown =>
  o !== null && typeof o === "object" && !Array.isArray(o) ? (o as Record<string, unknown>)[key] : undefined;

/** Keeps the entries of a list answer the view may see. */
export async function filterList(
  view: ViewFilter,
  kind: ListKind,
  answer: unknown,
  upstream: Upstream,
  signal?: AbortSignal,
): Promise<unknown> {
  if (kind === "volume") {
    // {"Volumes": [...], "Warnings": [...]}
    const volumes = get(answer, "Volumes");
    if (!Array.isArray(volumes)) return answer;
    (answer as Record<string, unknown>).Volumes = volumes.filter((v) =>
      view.visible({ names: [String(get(v, "Name") ?? "")], labels: get(v, "Labels") }),
    );
    return answer;
  }
  if (!Array.isArray(answer)) return answer;
  switch (kind) {
    case "container":
      return answer.filter((c) =>
        view.visible({ names: containerNames(get(c, "Names")), labels: get(c, "Labels") }),
      );
    case "image":
      return answer.filter((i) =>
        view.visible({ names: imageNames(get(i, "RepoTags")), labels: get(i, "Labels") }),
      );
    case "network":
      return answer.filter((n) =>
        view.visible({ names: [String(get(n, "Name") ?? "")], labels: get(n, "Labels") }),
      );
    case "service":
      return answer.filter((s) =>
        view.visible({
          names: [String(get(get(s, "Spec"), "Name") ?? "")],
          labels: get(get(s, "Spec"), "Labels"),
        }),
      );
    case "task": {
      // A task is visible when its service is: one service list answers for all of them.
      if (answer.length === 0) return answer;
      const services = await daemonGet(upstream, "/services", signal);
      if (services.status !== 200) throw new Error(`the daemon answered ${services.status} to GET /services`);
      const seen = (await filterList(
        view,
        "service",
        JSON.parse(services.body.toString("utf8")),
        upstream,
      )) as unknown[];
      const visible = new Set(
        seen.map((s) => get(s, "ID")).filter((id): id is string => typeof id === "string"),
      );
      return answer.filter((t) => visible.has(String(get(t, "ServiceID") ?? "")));
    }
  }
}

/**
 * A visible network's inspect lists the containers attached to it (and, verbose on a swarm
 * network, its services with their tasks): only visible ones stay.
 */
async function hideNetworkMembers(
  view: ViewFilter,
  network: unknown,
  upstream: Upstream,
  signal: AbortSignal,
): Promise<void> {
  const prune = async (field: string, path: string, kind: ListKind, key: (o: unknown) => unknown) => {
    const members = get(network, field);
    if (members === null || typeof members !== "object" || Object.keys(members).length === 0) return;
    const list = await daemonGet(upstream, path, signal);
    if (list.status !== 200) throw new Error(`the daemon answered ${list.status} to GET ${path}`);
    const seen = (await filterList(
      view,
      kind,
      JSON.parse(list.body.toString("utf8")),
      upstream,
    )) as unknown[];
    const visible = new Set(seen.map(key));
    for (const k of Object.keys(members)) if (!visible.has(k)) delete (members as Record<string, unknown>)[k];
  };
  await prune("Containers", "/containers/json?all=1", "container", (c) => get(c, "Id"));
  await prune("Services", "/services", "service", (s) => get(get(s, "Spec"), "Name"));
}

/** `/events` through the view: headers at once, then only the events of visible objects, in order. */
async function streamEvents(
  view: ViewFilter,
  req: IncomingMessage,
  res: ServerResponse,
  upstream: Upstream,
  abort: AbortController,
): Promise<ForwardOutcome> {
  let answer: Awaited<ReturnType<Upstream["pool"]["request"]>>;
  try {
    answer = await upstream.pool.request({
      method: "GET",
      path: req.url as string,
      headers: endToEndRequestHeaders(req.rawHeaders, { keepContentLength: false }),
      signal: abort.signal,
    });
  } catch (error) {
    return failed(res, error, upstream, abort.signal);
  }
  const headers = endToEndResponseHeaders(answer.headers as Record<string, string | string[]>).filter(
    (_v, i, all) => (all[i - (i % 2)] as string).toLowerCase() !== "content-length",
  );
  res.writeHead(answer.statusCode, headers);
  res.flushHeaders();
  const status = answer.statusCode;
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] =
    status === 200
      ? [answer.body, new EventFilter(new EventVisibility(view, upstream, abort.signal)), res]
      : [answer.body, res];
  try {
    await pipeline(stages);
    return { status };
  } catch (error) {
    const err = error instanceof Error ? error : new Error(String(error));
    if (!res.destroyed) res.destroy(err);
    return { status, ...(abort.signal.aborted ? {} : { error: err }) };
  }
}

/** Which events a view lets through; remembers objects for the life of one stream. */
export class EventVisibility {
  private readonly cache = new Map<string, boolean>();
  private readonly resolver: Resolver;

  constructor(
    private readonly view: ViewFilter,
    upstream: Upstream,
    signal?: AbortSignal,
  ) {
    this.resolver = new Resolver(upstream, view, signal);
  }

  /** Event types visibility does not govern (daemon reloads, nodes, secrets, configs, plugins). */
  static readonly UNGOVERNED: ReadonlySet<string> = new Set(["daemon", "node", "secret", "config", "plugin"]);

  async decide(event: unknown): Promise<boolean> {
    const type = get(event, "Type");
    const actor = get(event, "Actor");
    const id = String(get(actor, "ID") ?? "");
    const action = String(get(event, "Action") ?? "");
    const attributes = get(actor, "Attributes");
    const attr = (k: string) => {
      const v = get(attributes, k);
      return typeof v === "string" ? v : undefined;
    };
    if (typeof type !== "string") return false;
    if (EventVisibility.UNGOVERNED.has(type)) return true;
    switch (type) {
      case "container": {
        // Container events carry the container's labels and name in their attributes.
        const visible = this.view.visible({ names: containerNames(attr("name")), labels: attributes });
        this.remember(`container:${id}`, visible);
        return visible;
      }
      case "network":
      case "volume": {
        if (!(await this.object(type, id, false))) return false;
        // connect/disconnect, mount/unmount: the container must be visible too.
        const container = attr("container");
        return container === undefined || (await this.object("container", container, false));
      }
      case "image":
        return this.object("image", id, true);
      case "service":
        return this.object("service", id, action === "update");
      default:
        return false;
    }
  }

  /** Looked up once per stream (again when `refresh`); a gone object is hidden unless seen visible before. */
  private async object(kind: ObjectKind, id: string, refresh: boolean): Promise<boolean> {
    if (id === "") return false;
    const key = `${kind}:${id}`;
    const known = this.cache.get(key);
    if (known !== undefined && !refresh) return known;
    let found: Awaited<ReturnType<Resolver["lookup"]>>;
    try {
      found = await this.resolver.lookup(kind, id);
    } catch {
      return known === true;
    }
    if (!found.found) return known === true;
    const visible = found.visible || known === true;
    this.remember(key, visible);
    if (found.id !== "" && found.id !== id) this.remember(`${kind}:${found.id}`, visible);
    return visible;
  }

  private remember(key: string, visible: boolean): void {
    if (this.cache.get(key) === true) return;
    this.cache.delete(key);
    this.cache.set(key, visible);
    if (this.cache.size > EVENT_CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
  }
}

/**
 * Splits the daemon's event stream into records (one JSON object per line, `application/json-seq`'s
 * leading RS allowed) and passes on, unchanged and in order, those `visibility` lets through. One
 * record is decided at a time; the next chunk is taken only then, so a slow client or lookup holds
 * the daemon back instead of filling memory.
 */
export class EventFilter extends Transform {
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly visibility: Pick<EventVisibility, "decide">,
    private readonly maxRecord = MAX_EVENT_BYTES,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.drain(false).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    this.drain(true).then(() => done(), done);
  }

  private async drain(final: boolean): Promise<void> {
    for (;;) {
      const nl = this.pending.indexOf(0x0a);
      if (nl === -1) break;
      const record = this.pending.subarray(0, nl + 1);
      this.pending = this.pending.subarray(nl + 1);
      if (await this.keep(record)) this.push(record);
    }
    if (final && this.pending.length > 0) {
      const record = this.pending;
      this.pending = Buffer.alloc(0);
      if (await this.keep(record)) this.push(record);
    }
    if (this.pending.length > this.maxRecord)
      throw new Error(`an event from the daemon is longer than ${this.maxRecord} bytes`);
  }

  private async keep(record: Buffer): Promise<boolean> {
    let text = record.toString("utf8").trim();
    if (text.startsWith("\u001e")) text = text.slice(1);
    if (text === "") return false;
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      return false;
    }
    return this.visibility.decide(event);
  }
}
