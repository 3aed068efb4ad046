/**
 * The live view's model: clients seen, recent decisions and denials with the rule that would allow
 * them, pushed to browsers as Server-Sent Events. Every string here may come from an attacker (the
 * target above all): it is only ever sent as JSON and shown with textContent by the page.
 */
import type { ServerResponse } from "node:http";
import type { Policy } from "../policy/policy.js";
import type { DecisionRecord, Observer } from "./observer.js";

export interface LiveDecision {
  readonly id: number;
  readonly time: number;
  readonly listener: string;
  readonly peer: string;
  readonly client: string;
  readonly profile: string;
  readonly mode: string;
  readonly method: string;
  readonly target: string;
  readonly operation: string | null;
  readonly decision: string;
  readonly rule: string | null;
  readonly reason: string | null;
  readonly status: number;
  readonly durationMs: number;
  readonly message: string | null;
  /** For denials (and audited requests): what would allow it. */
  readonly suggestion: string | null;
}

export interface LiveClient {
  client: string;
  profile: string;
  mode: string;
  requests: number;
  allowed: number;
  denied: number;
  audited: number;
  lastSeen: number;
  lastOperation: string | null;
}

export interface LiveSnapshot {
  readonly policy: { readonly version: string; readonly origin: string };
  readonly started: number;
  readonly clients: readonly LiveClient[];
  readonly recent: readonly LiveDecision[];
  readonly denials: readonly LiveDecision[];
}

export interface LiveView extends Observer {
  snapshot(): LiveSnapshot;
  /** Turns `res` into an SSE stream: a snapshot first, then one event per decision. */
  subscribe(res: ServerResponse): boolean;
  close(): void;
}

const RECENT = 200;
const DENIALS = 100;
const MAX_SUBSCRIBERS = 32;
const MAX_FIELD = 2048;

const clip = (s: string) => (s.length > MAX_FIELD ? `${s.slice(0, MAX_FIELD)}...` : s);

/** What would allow a denied (or audited) request: like `portcullis check`'s "to change". */
export function suggestionFor(
  r: Pick<DecisionRecord, "decision" | "reason" | "operation" | "profile" | "rule" | "message">,
  policyOrigin: string,
): string | null {
  if (r.decision === "allow" || r.operation === null) return null;
  if (r.decision === "deny" && r.reason !== "policy") return null;
  if (policyOrigin === "environment toggles") {
    const m = r.message === undefined ? null : /\): (.*)$/.exec(r.message);
    return m?.[1] ?? r.message ?? null;
  }
  const rule = `- allow: ${r.operation}`;
  return r.rule !== undefined && r.rule !== "default deny"
    ? `add "${rule}" to profile ${r.profile}, above the rule "${r.rule}"`
    : `add "${rule}" to profile ${r.profile}`;
}

export function createLiveView(policy: () => Policy): LiveView {
  const started = Date.now();
  const recent: LiveDecision[] = [];
  const denials: LiveDecision[] = [];
  const clients = new Map<string, LiveClient>();
  const subscribers = new Set<ServerResponse>();
  let nextId = 1;
  const keepAlive = setInterval(() => {
    for (const res of subscribers) res.write(": keep-alive\n\n");
  }, 15_000);
  keepAlive.unref();

  const send = (res: ServerResponse, event: string, data: unknown) => {
    // JSON.stringify escapes CR and LF, so no field can end the SSE event early.
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const snapshot = (): LiveSnapshot => {
    const p = policy();
    return {
      policy: { version: p.version, origin: p.origin },
      started,
      clients: [...clients.values()],
      recent: [...recent],
      denials: [...denials],
    };
  };
  return {
    decision(r: DecisionRecord) {
      const entry: LiveDecision = {
        id: nextId++,
        time: r.time,
        listener: r.listener,
        peer: r.peer,
        client: r.client,
        profile: r.profile,
        mode: r.mode,
        method: clip(r.method),
        target: clip(r.target),
        operation: r.operation,
        decision: r.decision,
        rule: r.rule ?? null,
        reason: r.reason ?? null,
        status: r.status,
        durationMs: r.durationMs,
        message: r.message === undefined ? null : clip(r.message),
        suggestion: suggestionFor(r, policy().origin),
      };
      recent.push(entry);
      if (recent.length > RECENT) recent.shift();
      if (r.decision !== "allow") {
        denials.push(entry);
        if (denials.length > DENIALS) denials.shift();
      }
      let c = clients.get(r.client);
      if (c === undefined) {
        c = {
          client: r.client,
          profile: r.profile,
          mode: r.mode,
          requests: 0,
          allowed: 0,
          denied: 0,
          audited: 0,
          lastSeen: 0,
          lastOperation: null,
        };
        clients.set(r.client, c);
      }
      c.profile = r.profile;
      c.mode = r.mode;
      c.requests++;
      if (r.decision === "allow") c.allowed++;
      else if (r.decision === "deny") c.denied++;
      else c.audited++;
      c.lastSeen = Math.max(c.lastSeen, r.time);
      c.lastOperation = r.operation;
      for (const res of subscribers) send(res, "decision", { decision: entry, client: c });
    },
    snapshot,
    subscribe(res) {
      if (subscribers.size >= MAX_SUBSCRIBERS) return false;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        connection: "keep-alive",
      });
      res.flushHeaders();
      res.write("retry: 2000\n\n");
      send(res, "snapshot", snapshot());
      subscribers.add(res);
      res.on("close", () => subscribers.delete(res));
      return true;
    },
    close() {
      clearInterval(keepAlive);
      for (const res of subscribers) res.end();
      subscribers.clear();
    },
  };
}
