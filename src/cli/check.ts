/**
 * Offline tools on a policy: `check` explains one decision, `test` runs a table of expected
 * decisions (for CI), `validate` loads a file and reports every problem with its position.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse } from "yaml";
import { ConfigError } from "../config/errors.js";
import type { ClientContext, DaemonLookup, Policy } from "../policy/policy.js";
import { where } from "../policy/profile.js";
import { riskClasses } from "../policy/risk.js";
import { createGate, type GateResult } from "../proxy/gate.js";
import { buildRouteIndex } from "../routing/match.js";
import { ROUTES } from "../routing/route-table.generated.js";

const INDEX = buildRouteIndex(ROUTES);

export interface Explanation {
  readonly result: GateResult;
  readonly decision: "allow" | "deny" | "refuse" | "not-found" | "audit";
  readonly lines: readonly string[];
}

/** Decides `METHOD TARGET` for a named client (default: what an unmatched client gets) and explains it. */
export function explain(
  policy: Policy,
  clientName: string | undefined,
  method: string,
  target: string,
): Explanation {
  const resolved = policy.clientNamed(clientName ?? "anonymous");
  if (resolved === undefined)
    throw new ConfigError("--client", clientName ?? "", `a client named in ${policy.origin}, or anonymous`);
  const context: ClientContext = {
    listener: "(offline)",
    remoteAddress: undefined,
    authorization: undefined,
  };
  const gate = createGate(INDEX, { current: { ...policy, resolveClient: () => resolved } });
  const result = gate.check(method, target, context);
  const lines: string[] = [];
  const who = `${resolved.client} (profile ${resolved.profile.name}, ${resolved.profile.mode})`;
  let decision: Explanation["decision"];
  if (result.verdict === "allow") {
    const op = result.match.route.operation;
    decision = result.decision.audited ? "audit" : "allow";
    lines.push(
      `decision:  ${decision === "audit" ? "allow (audit mode: the rules would deny, the request is forwarded and logged)" : "allow"}`,
    );
    lines.push(`operation: ${op}${riskSuffix(op)}`);
    lines.push(`client:    ${who}`);
    lines.push(
      `rule:      ${result.decision.rule}${result.decision.source ? ` at ${where(result.decision.source)}` : ""}`,
    );
    lines.push(
      `to change: ${changeHint(policy, resolved.profile.name, op, result.decision.allow && !result.decision.audited, result.decision.source?.line)}`,
    );
  } else {
    decision = result.status === 404 ? "not-found" : result.status === 403 ? "deny" : "refuse";
    lines.push(`decision:  ${decision === "deny" ? "deny (403)" : `${decision} (${result.status})`}`);
    if (result.operation) lines.push(`operation: ${result.operation}${riskSuffix(result.operation)}`);
    lines.push(`client:    ${who}`);
    lines.push(`message:   ${result.message}`);
    if (result.decision) {
      lines.push(
        `rule:      ${result.decision.rule}${result.decision.source ? ` at ${where(result.decision.source)}` : ""}`,
      );
      if (result.operation && result.status === 403) {
        lines.push(
          `to change: ${changeHint(policy, resolved.profile.name, result.operation, false, result.decision.source?.line)}`,
        );
      }
    }
  }
  return { result, decision, lines };
}

function riskSuffix(operation: string): string {
  const route = ROUTES.find((r) => r.operation === operation);
  const classes = route ? riskClasses(route) : [];
  return classes.length > 0 ? ` [${classes.join(", ")}]` : "";
}

function changeHint(
  policy: Policy,
  profile: string,
  operation: string,
  allowed: boolean,
  line: number | undefined,
): string {
  if (policy.origin === "environment toggles") {
    return allowed ? "unset the toggle named in the rule" : "see the message for the toggle to set";
  }
  const rule = `"- ${allowed ? "deny" : "allow"}: ${operation}"`;
  // An unmatched client without default_profile has no profile to add a rule to.
  if (profile === "(none)")
    return `add a client entry that matches it, or a default_profile, whose profile has ${rule}`;
  return line === undefined
    ? `add ${rule} to profile ${profile}`
    : `add ${rule} to profile ${profile} before line ${line}`;
}

export interface TestCase {
  readonly name?: string;
  readonly client?: string;
  readonly request: string;
  readonly expect: "allow" | "deny" | "refuse" | "not-found" | "audit";
  readonly operation?: string;
}

export interface CaseFile {
  readonly config?: string;
  readonly cases: readonly TestCase[];
}

export function readCaseFile(path: string): CaseFile & { baseDir: string } {
  // ConfigErrors: the CLI prints them as one line and exits 2, apart from a failing case's 1.
  let data: Partial<CaseFile> | null;
  try {
    data = parse(readFileSync(path, "utf8")) as Partial<CaseFile> | null;
  } catch (error) {
    throw new ConfigError(
      "cases file",
      path,
      `a readable YAML file (${(error as Error).message.split("\n")[0]})`,
    );
  }
  if (data === null || !Array.isArray(data.cases))
    throw new ConfigError("cases file", path, 'a YAML file with a "cases:" list');
  for (const [i, c] of data.cases.entries()) {
    if (typeof c?.request !== "string" || !/^\S+ \S+$/.test(c.request)) {
      throw new ConfigError(
        `${path}: cases[${i}].request`,
        String(c?.request ?? ""),
        '"METHOD TARGET", e.g. "GET /v1.41/containers/json"',
      );
    }
    if (!["allow", "deny", "refuse", "not-found", "audit"].includes(c.expect)) {
      throw new ConfigError(
        `${path}: cases[${i}].expect`,
        String(c.expect ?? ""),
        "allow, deny, refuse, not-found or audit",
      );
    }
  }
  return { ...(data as CaseFile), baseDir: dirname(resolve(path)) };
}

export function runCases(
  policy: Policy,
  cases: readonly TestCase[],
): { passed: number; failed: number; report: string[] } {
  let passed = 0;
  let failed = 0;
  const report: string[] = [];
  for (const c of cases) {
    const [method, target] = c.request.split(" ") as [string, string];
    const label = c.name ?? `${c.client ?? "anonymous"}: ${c.request}`;
    let got: string;
    let op: string | null = null;
    try {
      const e = explain(policy, c.client, method, target);
      got = e.decision;
      op = e.result.verdict === "allow" ? e.result.match.route.operation : e.result.operation;
    } catch (error) {
      got = `error: ${(error as Error).message}`;
    }
    const ok = got === c.expect && (c.operation === undefined || c.operation === op);
    if (ok) passed++;
    else failed++;
    report.push(
      `${ok ? "ok  " : "FAIL"} ${label}${ok ? "" : ` (expected ${c.expect}${c.operation ? ` ${c.operation}` : ""}, got ${got}${op ? ` ${op}` : ""})`}`,
    );
  }
  return { passed, failed, report };
}

/**
 * `check --body FILE`: the profile's body rules applied to a request body, offline. Networks named
 * by ID cannot be resolved without the daemon; the explanation says so instead of guessing.
 */
export async function explainBody(explanation: Explanation, body: Buffer): Promise<Explanation> {
  const { result } = explanation;
  if (result.verdict !== "allow") return explanation;
  const inspector = result.profileRules.body;
  const operation = result.match.route.operation;
  if (inspector === undefined || !inspector.inspects(operation)) {
    return {
      ...explanation,
      lines: [...explanation.lines, `body:      not inspected for ${operation} by this profile`],
    };
  }
  const unresolved: string[] = [];
  const offline: DaemonLookup = {
    networkDriver: async (ref) => {
      unresolved.push(ref);
      return undefined;
    },
  };
  const verdict = await inspector.check(
    { method: result.match.route.method, rawTarget: "", match: result.match },
    body,
    offline,
  );
  const lines = explanation.lines.filter(
    (l) => !l.startsWith("decision:") && !(l.startsWith("to change:") && !verdict.ok),
  );
  const note =
    unresolved.length > 0
      ? [`note:      networks ${unresolved.join(", ")} are checked against the daemon when served`]
      : [];
  if (!verdict.ok) {
    return {
      ...explanation,
      decision: verdict.status === 403 ? "deny" : "refuse",
      lines: [
        `decision:  ${verdict.status === 403 ? "deny" : "refuse"} (${verdict.status}) by the body`,
        ...lines,
        `body:      ${verdict.message}`,
        `to change: relax ${verdict.rule} under body: in profile ${result.profile}`,
        ...note,
      ],
    };
  }
  const state = verdict.audit
    ? `would be refused, forwarded in ${result.mode} mode: ${verdict.audit.message}`
    : verdict.mutated
      ? `allowed, labels stamped: ${verdict.body.toString("utf8")}`
      : "allowed";
  return {
    ...explanation,
    lines: [explanation.lines[0] as string, ...lines, `body:      ${state}`, ...note],
  };
}
