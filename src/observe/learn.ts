/**
 * Learning: which operations each client really uses, and the smallest policy that allows exactly
 * them. Fed live by the learn observer (profiles with `mode: learn`) or offline from an audit log
 * (`portcullis learn --from`). The output is a complete policy file: one profile per client, each
 * client keeping its `match:` (and the listeners) from the current policy file, risky operations
 * marked with a comment.
 */
import { renameSync, writeFileSync } from "node:fs";
import { Document, isMap, isSeq, type Pair, Scalar, YAMLMap, YAMLSeq } from "yaml";
import { loadPolicyFile } from "../config/policy-file.js";
import type { PolicyFile } from "../config/policy-schema.js";
import { riskClasses } from "../policy/risk.js";
import type { RouteDef } from "../routing/route-def.js";
import { ROUTES } from "../routing/route-table.generated.js";
import type { Logger } from "./logger.js";
import type { DecisionRecord, Observer } from "./observer.js";

/** The part of a decision record learning needs (live records and audit-log lines both have it). */
export interface Observed {
  readonly time: number;
  readonly client: string;
  readonly operation: string | null;
  readonly decision: string;
}

interface ClientUse {
  readonly operations: Map<string, number>;
  requests: number;
  first: number;
  last: number;
}

/** What was seen, per client. `add` returns true when an operation is new for its client. */
export class LearnBook {
  private readonly byClient = new Map<string, ClientUse>();

  add(o: Observed): boolean {
    // Denied requests never reached the daemon (refused targets, unknown routes): nothing to allow.
    if (o.operation === null || o.decision === "deny") return false;
    let use = this.byClient.get(o.client);
    if (use === undefined) {
      use = { operations: new Map(), requests: 0, first: o.time, last: o.time };
      this.byClient.set(o.client, use);
    }
    use.requests++;
    use.first = Math.min(use.first, o.time);
    use.last = Math.max(use.last, o.time);
    const seen = use.operations.get(o.operation);
    use.operations.set(o.operation, (seen ?? 0) + 1);
    return seen === undefined;
  }

  get size(): number {
    return this.byClient.size;
  }

  clients(): ReadonlyMap<string, Readonly<ClientUse>> {
    return this.byClient;
  }
}

const ROUTE_BY_OPERATION = new Map<string, RouteDef>();
for (const r of ROUTES) if (!ROUTE_BY_OPERATION.has(r.operation)) ROUTE_BY_OPERATION.set(r.operation, r);

export function riskOf(operation: string): string[] {
  const route = ROUTE_BY_OPERATION.get(operation);
  return route ? riskClasses(route) : [];
}

/** A client's profile name in the generated file: its own name (anonymous: the default profile). */
function profileName(client: string): string {
  return client;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The generated policy as YAML. `current` is the policy file in force (for each client's `match:`
 * and the listeners); without it, clients are written as commented examples to fill in.
 */
export function learnedPolicyYaml(
  book: LearnBook,
  current: { readonly path: string; readonly data: PolicyFile } | undefined,
  source: string,
): string {
  const doc = new Document({ version: 1 });
  const root = doc.contents as YAMLMap;
  const clients = [...book.clients()].sort(([a], [b]) => a.localeCompare(b));
  const total = clients.reduce((n, [, u]) => n + u.requests, 0);
  doc.commentBefore = [
    ` Least-privilege policy written by portcullis learn from ${source}:`,
    ` ${total} requests by ${clients.length} client${clients.length === 1 ? "" : "s"}.`,
    " One profile per client, allowing exactly the operations it was seen using (nothing else).",
    ' Operations marked "risk:" write, copy data out (exfiltrate), open raw streams (hijack) or',
    " administer the daemon (admin): check that the client really needs each of them.",
    " Check with `portcullis validate FILE`, then serve it: every profile is in enforce mode.",
  ].join("\n");
  if (current?.data.listeners) {
    root.add(doc.createPair("listeners", current.data.listeners));
  }
  const profiles = new YAMLMap();
  for (const [client, use] of clients) {
    const ops = [...use.operations.keys()].sort();
    const seq = new YAMLSeq();
    for (const op of ops) {
      const s = new Scalar(op);
      const risk = riskOf(op);
      if (risk.length > 0) s.comment = ` risk: ${risk.join(", ")}`;
      seq.add(s);
    }
    const rule = new YAMLMap();
    rule.add(doc.createPair("allow", seq));
    const rules = new YAMLSeq();
    rules.add(rule);
    const profile = new YAMLMap();
    profile.add(doc.createPair("mode", "enforce"));
    profile.add(doc.createPair("rules", rules));
    const key = new Scalar(profileName(client));
    key.commentBefore = ` ${client}: ${use.requests} requests, ${ops.length} operations, ${iso(use.first)} to ${iso(use.last)}`;
    profiles.add(doc.createPair(key, profile));
  }
  root.add(doc.createPair("profiles", profiles));

  const entries = new YAMLSeq();
  const unknown: string[] = [];
  const learned = new Set(clients.map(([c]) => c).filter((c) => c !== "anonymous"));
  // The current file's order: the first matching entry wins, so it must not change.
  for (const entry of current?.data.clients ?? []) {
    if (!learned.has(entry.name)) continue;
    learned.delete(entry.name);
    entries.add(doc.createNode({ name: entry.name, profile: profileName(entry.name), match: entry.match }));
  }
  for (const name of learned) unknown.push(name);
  if (entries.items.length > 0) root.add(doc.createPair("clients", entries));
  else root.add(doc.createPair("clients", new YAMLSeq()));
  if (book.clients().has("anonymous")) root.add(doc.createPair("default_profile", profileName("anonymous")));
  if (unknown.length > 0) {
    doc.comment = [
      " Clients not found in the current policy file: say how to recognise each one, e.g.",
      ...unknown.flatMap((name) => [
        `   - name: ${JSON.stringify(name)}`,
        `     profile: ${JSON.stringify(profileName(name))}`,
        "     match: { source: [10.0.0.0/8] }   # or listener:, token:, certificate:",
      ]),
    ].join("\n");
  }
  tidy(doc);
  return doc.toString({ lineWidth: 0 });
}

/** Block style everywhere except `match:` maps, which read better on one line. */
function tidy(doc: Document): void {
  const root = doc.contents;
  if (!isMap(root)) return;
  const clients = root.get("clients", true);
  if (isSeq(clients)) {
    for (const item of clients.items) {
      if (!isMap(item)) continue;
      const match = item.get("match", true);
      if (isMap(match)) match.flow = true;
    }
  }
  const listeners = root.get("listeners", true);
  if (isSeq(listeners)) {
    for (const l of listeners.items) {
      if (!isMap(l)) continue;
      const tls = (l.items as Pair[]).find((p) => (p.key as Scalar | undefined)?.value === "tls");
      if (tls && isMap(tls.value)) tls.value.flow = true;
    }
  }
}

/** Audit-log lines (JSON, as written by the audit log) -> observations. */
export function observationsFromAuditLog(
  text: string,
  modes: ReadonlySet<string> | "all",
): { observed: Observed[]; skipped: number } {
  const observed: Observed[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      skipped++;
      continue;
    }
    if (typeof r.client !== "string" || typeof r.decision !== "string") continue;
    if (typeof r.operation !== "string") continue;
    if (modes !== "all" && !modes.has(String(r.mode))) continue;
    const time = typeof r.time === "string" ? Date.parse(r.time) : typeof r.time === "number" ? r.time : 0;
    observed.push({
      time: Number.isNaN(time) ? 0 : time,
      client: r.client,
      operation: r.operation,
      decision: r.decision,
    });
  }
  return { observed, skipped };
}

export interface LearnObserver extends Observer {
  /** Writes the file now if anything changed since the last write. */
  flush(): void;
  /** Final write; later records are ignored. */
  close(): void;
  readonly book: LearnBook;
}

/** Records learn-mode traffic and keeps `output` up to date (debounced, and at close). */
export function learnObserver(options: {
  readonly output: string;
  /** The policy file in force; re-read at each write so reloads are followed. */
  readonly policyFile: { readonly path: string; readonly data: PolicyFile } | undefined;
  readonly logger: Logger;
  readonly debounceMs?: number;
}): LearnObserver {
  const book = new LearnBook();
  const debounceMs = options.debounceMs ?? 2000;
  let lastGood = options.policyFile;
  let dirty = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const current = () => {
    if (lastGood === undefined) return undefined;
    try {
      const fresh = loadPolicyFile(lastGood.path, ROUTES);
      lastGood = { path: fresh.path, data: fresh.data };
    } catch {
      /* an invalid file on disk: the proxy keeps the old one, and so do we */
    }
    return lastGood;
  };
  const write = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!dirty) return;
    dirty = false;
    try {
      const text = learnedPolicyYaml(book, current(), "live traffic (profiles in learn mode)");
      const tmp = `${options.output}.tmp-${process.pid}`;
      writeFileSync(tmp, text, { mode: 0o640 });
      renameSync(tmp, options.output);
      const ops = [...book.clients().values()].reduce((n, u) => n + u.operations.size, 0);
      options.logger.info(
        { output: options.output, clients: book.size, operations: ops },
        `learned policy written to ${options.output}: ${book.size} clients, ${ops} operations`,
      );
    } catch (error) {
      options.logger.error(
        { output: options.output },
        `could not write the learned policy: ${(error as Error).message}`,
      );
    }
  };
  return {
    book,
    decision(r: DecisionRecord) {
      if (closed || r.mode !== "learn") return;
      const fresh = book.add(r);
      dirty = true;
      if (fresh && timer === undefined) {
        timer = setTimeout(write, debounceMs);
        timer.unref();
      }
    },
    flush: write,
    close() {
      if (closed) return;
      write();
      closed = true;
    },
  };
}
