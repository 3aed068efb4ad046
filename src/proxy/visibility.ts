/**
 * Visibility against the daemon: which object a request names, whether the profile may see it, and
 * the answer to give when it may not. Objects are resolved by asking the daemon (an inspect through
 * the upstream pool, the only thing that reaches it before the decision); nothing negative is cached,
 * so a name taken later by a visible object is seen at once (and a hidden one squatting a name never
 * is). A request on a visible object is pinned to the object's full ID, so the daemon acts on the
 * object that was checked even if names move in between.
 */
import type { IncomingMessage } from "node:http";
import { asString, field, JsonRefusal, parseGoJson } from "../policy/go-json.js";
import type { ViewFilter } from "../policy/policy.js";
import type { CanonicalTarget } from "../routing/canonical.js";
import type { RouteMatch } from "../routing/match.js";
import { endToEndResponseHeaders } from "./headers.js";
import type { Upstream } from "./upstream.js";
import { containerNames, imageNames, type ObjectKind, VIEW_ROLES } from "./view.js";

/** Largest daemon answer (list, inspect) or request body read for the view; beyond it the exchange fails. */
export const MAX_VIEW_BODY_BYTES = 16 * 1024 * 1024;

export class ViewBodyTooLarge extends Error {}

/** One complete answer from the daemon. */
export interface DaemonAnswer {
  readonly status: number;
  /** End-to-end headers as a flat list, content-length included. */
  readonly headers: string[];
  readonly body: Buffer;
}

/** An answer portcullis gives instead of forwarding: Docker's error format, with the daemon's headers when it has them. */
export interface Refusal {
  readonly status: number;
  readonly message: string;
  /** End-to-end headers of a daemon answer to keep (Api-Version, Server...), so the refusal looks like the daemon's. */
  readonly headers?: readonly string[];
}

export async function readBounded(body: AsyncIterable<Buffer>, limit = MAX_VIEW_BODY_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit)
      throw new ViewBodyTooLarge(`the answer is larger than ${limit} bytes, the most portcullis filters`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A read-only GET to the daemon, read completely (bounded). */
export async function daemonGet(
  upstream: Upstream,
  path: string,
  signal?: AbortSignal,
): Promise<DaemonAnswer> {
  const answer = await upstream.pool.request({ method: "GET", path, ...(signal ? { signal } : {}) });
  let body: Buffer;
  try {
    body = await readBounded(answer.body);
  } catch (error) {
    answer.body.destroy();
    throw error;
  }
  return {
    status: answer.statusCode,
    headers: endToEndResponseHeaders(answer.headers as Record<string, string | string[]>),
    body,
  };
}

/** Path value for a request-target: what Go's single unescape turns back into `value`. */
export function encodePathValue(value: string): string {
  let out = "";
  for (const c of value) {
    const code = c.codePointAt(0) as number;
    out += code <= 0x20 || code >= 0x7f || c === "%" || c === "?" || c === "#" ? encodeURIComponent(c) : c;
  }
  return out;
}

/** The message dockerd gives for an object that does not exist (verified on 20.10), so hidden looks the same. */
export function notFoundMessage(kind: ObjectKind, ref: string, operation: string): string {
  switch (kind) {
    case "container":
      return `No such container: ${ref}`;
    case "exec":
      return `No such exec instance: ${ref}`;
    case "image": {
      if (operation === "ImageGetAll") return `No such image: ${ref}`;
      const full = imageReference(ref);
      return operation === "ImageInspect"
        ? `no such image: ${ref}: No such image: ${full}`
        : `No such image: ${full}`;
    }
    case "network":
      return `network ${ref} not found`;
    case "volume":
      return `get ${ref}: no such volume`;
    case "service":
      return `service ${ref} not found`;
    case "task":
      return `task ${ref} not found`;
  }
}

/** `nope` -> `nope:latest`, as dockerd names a missing image; IDs, digests and tagged names stay. */
function imageReference(ref: string): string {
  if (/^(sha256:)?[0-9a-f]{12,64}$/.test(ref) || ref.includes("@")) return ref;
  const last = ref.slice(ref.lastIndexOf("/") + 1);
  return last.includes(":") ? ref : `${ref}:latest`;
}

export type Lookup =
  | {
      readonly found: true;
      readonly id: string;
      readonly visible: boolean;
      readonly headers: readonly string[];
    }
  /** The daemon's own answer: 404 for a missing object, 503 when the node is not a swarm manager... */
  | { readonly found: false; readonly answer: DaemonAnswer };

const INSPECT_PATHS: Readonly<Record<ObjectKind, (ref: string) => string>> = {
  container: (r) => `/containers/${r}/json`,
  exec: (r) => `/exec/${r}/json`,
  image: (r) => `/images/${r}/json`,
  network: (r) => `/networks/${r}`,
  volume: (r) => `/volumes/${r}`,
  service: (r) => `/services/${r}`,
  task: (r) => `/tasks/${r}`,
};

const get = (o: unknown, key: string): unknown =>
  o !== null && typeof o === "object" && !Array.isArray(o) ? (o as Record<string, unknown>)[key] : undefined;
const str = (v: unknown): string => (typeof v === "string" ? v : "");

/** Resolves objects for one view, asking the daemon every time (no cache: see the file comment). */
export class Resolver {
  constructor(
    private readonly upstream: Upstream,
    private readonly view: ViewFilter,
    private readonly signal?: AbortSignal,
  ) {}

  /** Looks `ref` (name, ID or prefix, as the client wrote it) up and decides. */
  async lookup(kind: ObjectKind, ref: string): Promise<Lookup> {
    const answer = await daemonGet(this.upstream, INSPECT_PATHS[kind](encodePathValue(ref)), this.signal);
    if (answer.status !== 200) return { found: false, answer };
    let body: unknown;
    try {
      body = JSON.parse(answer.body.toString("utf8"));
    } catch {
      throw new Error(`the daemon's answer to ${INSPECT_PATHS[kind](ref)} is not JSON`);
    }
    const decided = await this.fromAnswer(kind, body);
    return { found: true, ...decided, headers: answer.headers };
  }

  /** Decides from an inspect answer: its ID and whether the profile may see it. */
  async fromAnswer(kind: ObjectKind, body: unknown): Promise<{ id: string; visible: boolean }> {
    switch (kind) {
      case "container":
        return {
          id: str(get(body, "Id")),
          visible: this.view.visible({
            names: containerNames(get(body, "Name")),
            labels: get(get(body, "Config"), "Labels"),
          }),
        };
      case "image":
        return {
          id: str(get(body, "Id")),
          visible: this.view.visible({
            names: imageNames(get(body, "RepoTags")),
            labels: get(get(body, "Config"), "Labels"),
          }),
        };
      case "network":
        return {
          id: str(get(body, "Id")),
          visible: this.view.visible({ names: [str(get(body, "Name"))], labels: get(body, "Labels") }),
        };
      case "volume":
        return {
          id: str(get(body, "Name")),
          visible: this.view.visible({ names: [str(get(body, "Name"))], labels: get(body, "Labels") }),
        };
      case "service":
        return {
          id: str(get(body, "ID")),
          visible: this.view.visible({
            names: [str(get(get(body, "Spec"), "Name"))],
            labels: get(get(body, "Spec"), "Labels"),
          }),
        };
      case "task": {
        // A task is visible when its service is.
        const service = str(get(body, "ServiceID"));
        const found = service === "" ? undefined : await this.lookup("service", service);
        return { id: str(get(body, "ID")), visible: found?.found === true && found.visible };
      }
      case "exec": {
        // An exec instance is visible when its container is.
        const container = str(get(body, "ContainerID"));
        const found = container === "" ? undefined : await this.lookup("container", container);
        return { id: str(get(body, "ID")), visible: found?.found === true && found.visible };
      }
    }
  }
}

/** Refusal carrying the daemon's own answer (its message, its headers). */
export function relay(answer: DaemonAnswer): Refusal {
  let message = answer.body.toString("utf8").trim();
  try {
    const parsed = JSON.parse(message) as { message?: unknown };
    if (typeof parsed.message === "string") message = parsed.message;
  } catch {
    /* plain-text error (old API versions): the text is the message */
  }
  return { status: answer.status, message, headers: answer.headers };
}

export type Precheck =
  | {
      readonly ok: true;
      /** The request-target to forward instead of the client's: pinned to the checked object's ID. */
      readonly target?: string;
      /** The request body, when it had to be read for the check (forward these bytes). */
      readonly body?: Buffer;
    }
  | ({ readonly ok: false } & Refusal);

/** Rebuilds the request-target with path parameter `param` replaced by `value` (other parts unchanged in meaning). */
export function pinTarget(target: CanonicalTarget, match: RouteMatch, param: string, value: string): string {
  const path = match.route.muxPath.replace(/\{([^}:]+)(?::[^}]*)?\}/g, (_all, name: string) =>
    encodePathValue(name === param ? value : (match.params[name] ?? "")),
  );
  return `${target.version === null ? "" : `/v${target.version}`}${path}${target.query === "" ? "" : `?${target.query}`}`;
}

/** Query values as dockerd's `r.Form` reads them (for GET and for non-form bodies: the URL query only). */
function queryValues(query: string, name: string): string[] {
  return new URLSearchParams(query).getAll(name);
}

const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\b/i;

/**
 * Decides, before anything but read-only lookups reaches the daemon, whether a request on single
 * objects may go on under the profile's visibility. Lists, events and the inspects that decide from
 * their own answer pass here and are filtered by response-filter.ts.
 */
export async function precheck(
  view: ViewFilter,
  upstream: Upstream,
  req: IncomingMessage,
  match: RouteMatch,
  target: CanonicalTarget,
  signal?: AbortSignal,
): Promise<Precheck> {
  if (view.visibility === undefined) return { ok: true };
  const operation = match.route.operation;
  const role = VIEW_ROLES[operation];
  if (role === undefined) return { ok: true };
  const resolver = new Resolver(upstream, view, signal);
  const hidden = (kind: ObjectKind, ref: string, headers: readonly string[]): Precheck => ({
    ok: false,
    status: 404,
    message: notFoundMessage(kind, ref, operation),
    headers,
  });

  switch (role.role) {
    case "prune":
      return {
        ok: false,
        status: 403,
        message: `portcullis denied ${operation}: this client sees only some objects (visibility), and a prune would remove objects it cannot see`,
      };
    case "query": {
      // dockerd reads POST form bodies before the query: such a body could name another object.
      if (req.method !== "GET" && req.method !== "HEAD" && FORM_TYPES.test(req.headers["content-type"] ?? ""))
        return {
          ok: false,
          status: 400,
          message: `portcullis refused ${operation}: a form-encoded body is not accepted when visibility applies`,
        };
      const values = queryValues(target.query, role.query);
      // r.Form.Get reads the first value only; `names` (docker save) reads them all.
      for (const ref of role.query === "names" ? values : values.slice(0, 1)) {
        const found = await resolver.lookup(role.kind, ref);
        if (!found.found) return { ok: false, ...relay(found.answer) };
        if (!found.visible) return hidden(role.kind, ref, found.headers);
      }
      return { ok: true };
    }
    case "object": {
      if (role.decidesFromAnswer) return { ok: true };
      let body: Buffer | undefined;
      if (role.bodyContainer) {
        body = await readBounded(req, 1024 * 1024);
        let container: string | undefined;
        try {
          container = asString(field(parseGoJson(body), "Container"));
        } catch (error) {
          if (!(error instanceof JsonRefusal)) throw error;
          return { ok: false, status: 400, message: `portcullis refused ${operation}: ${error.message}` };
        }
        if (container !== undefined) {
          const found = await resolver.lookup("container", container);
          if (!found.found) return { ok: false, ...relay(found.answer) };
          if (!found.visible) return hidden("container", container, found.headers);
        }
      }
      const ref = match.params[role.param] ?? "";
      const found = await resolver.lookup(role.kind, ref);
      if (!found.found) return { ok: false, ...relay(found.answer) };
      if (!found.visible) return hidden(role.kind, ref, found.headers);
      // Images are not pinned: a tag and the image ID mean different things to DELETE and push.
      // `DELETE /containers/parent/alias?link=1` names a legacy link, not the container.
      const pin = role.kind !== "image" && found.id !== "" && !/(^|&)link=/.test(target.query);
      return {
        ok: true,
        ...(pin ? { target: pinTarget(target, match, role.param, found.id) } : {}),
        ...(body ? { body } : {}),
      };
    }
    default:
      return { ok: true };
  }
}
