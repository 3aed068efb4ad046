/**
 * Reads and validates a policy file. Every mistake is reported as `FILE:LINE:COLUMN: what was found;
 * what is accepted`, with "did you mean" for names; nothing is half-loaded.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Yaml from "yaml";
import type { z } from "zod";
import { didYouMean } from "../policy/did-you-mean.js";
import type { RuleSource } from "../policy/policy.js";
import type { RuleSpec } from "../policy/profile.js";
import { resolveSelector } from "../policy/selectors.js";
import type { RouteDef } from "../routing/route-def.js";
import { parseListener } from "./addresses.js";
import { type PolicyFile, policySchemas } from "./policy-schema.js";

// yaml is loaded on first use, from its CommonJS build: a proxy configured by environment toggles
// alone never loads it (idle RSS, docs/benchmarks.md).
const require = createRequire(import.meta.url);
const loadYaml = () => require("yaml") as typeof Yaml;

export interface PolicyProblem {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

export class PolicyFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly PolicyProblem[],
  ) {
    super(problems.map((p) => `${file}:${p.line}:${p.column}: ${p.message}`).join("\n"));
    this.name = "PolicyFileError";
  }
}

/** A validated policy file: plain data plus where each rule was written. */
export interface LoadedPolicyFile {
  readonly path: string;
  readonly version: string;
  readonly data: PolicyFile;
  /** Profile name -> its rules with their positions. */
  readonly rules: ReadonlyMap<string, readonly RuleSpec[]>;
}

type Path = readonly (string | number)[];

class Locator {
  constructor(
    private readonly doc: Yaml.Document,
    private readonly lines: Yaml.LineCounter,
  ) {}

  /** Position of the node at `path`, or of the closest existing parent. */
  at(path: Path, key?: string): { line: number; column: number } {
    const { isNode, isPair, isScalar } = loadYaml();
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true);
      if (!isNode(node)) continue;
      if (key !== undefined && n === path.length && "items" in node) {
        const pair = (node.items as unknown[]).find(
          (p) => isPair(p) && isScalar(p.key) && p.key.value === key,
        );
        if (isPair(pair) && isNode(pair.key) && pair.key.range) return this.pos(pair.key.range[0]);
      }
      if (node.range) return this.pos(node.range[0]);
    }
    return { line: 1, column: 1 };
  }

  private pos(offset: number) {
    const p = this.lines.linePos(offset);
    return { line: p.line, column: p.col };
  }
}

function describeFound(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function zodProblems(error: z.ZodError, data: unknown, at: Locator): PolicyProblem[] {
  return error.issues.map((issue) => {
    const path = issue.path as Path;
    let found: unknown = data;
    for (const k of path)
      found =
        found === null || typeof found !== "object"
          ? undefined
          : (found as Record<string | number, unknown>)[k];
    const where = path.length > 0 ? path.join(".") : "the file";
    if (issue.code === "unrecognized_keys") {
      const key = issue.keys[0] as string;
      return {
        ...at.at(path, key),
        message: `unknown key "${key}" in ${where}; accepted: ${acceptedKeys(path).join(", ")}${
          didYouMean(key, acceptedKeys(path))
            ? ` (did you mean "${didYouMean(key, acceptedKeys(path))}"?)`
            : ""
        }`,
      };
    }
    if (issue.code === "invalid_union" && path.at(-2) === "rules") {
      return {
        ...at.at(path),
        message: `rule ${describeFound(found)} in ${where}: expected "allow: SELECTOR" or "deny: SELECTOR", optionally with "when:"`,
      };
    }
    return {
      ...at.at(path),
      message: `${where}: found ${describeFound(found)}; ${issue.message.replace(/^Invalid (input|option): /, "")}`,
    };
  });
}

function acceptedKeys(path: Path): string[] {
  const last = path.filter((p) => typeof p === "string").at(-1);
  if (path.length === 0) return ["version", "listeners", "profiles", "clients", "default_profile"];
  if (path.includes("when")) return ["query", "registry"];
  if (path.includes("certificate")) return ["cn", "san"];
  if (path.includes("token")) return ["env", "file"];
  if (last === "match") return ["listener", "source", "token", "certificate"];
  if (path[0] === "clients") return ["name", "profile", "match"];
  if (path[0] === "listeners")
    return path.includes("tls") ? ["cert", "key", "client_ca"] : ["name", "address", "tls"];
  if (path[0] === "profiles" && path.includes("rules")) return ["allow", "deny", "when"];
  if (path[0] === "profiles" && path[2] === "visibility") return ["labels", "names"];
  if (path[0] === "profiles" && path[2] === "body") {
    return [
      "privileged",
      "capabilities",
      "devices",
      "host_namespaces",
      "unconfined",
      "bind_sources",
      "volumes_from",
      "sysctls",
      "runtimes",
      "non_root",
      "images",
      "exec_commands",
    ];
  }
  if (path[0] === "profiles" && path[2] === "mutate") return ["labels"];
  if (path[0] === "profiles") return ["mode", "rules", "body", "mutate", "visibility", "redact"];
  return [];
}

export function parsePolicyText(path: string, text: string, routes: readonly RouteDef[]): LoadedPolicyFile {
  const { LineCounter, parseDocument } = loadYaml();
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new PolicyFileError(
      path,
      doc.errors.map((e) => {
        const p = lines.linePos(e.pos[0]);
        return { line: p.line, column: p.col, message: `YAML: ${e.message.split("\n")[0]}` };
      }),
    );
  }
  const at = new Locator(doc, lines);
  const raw = doc.toJS() as unknown;
  const parsed = policySchemas().policyFileSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new PolicyFileError(path, zodProblems(parsed.error, raw, at));
  const data = parsed.data;
  const problems: PolicyProblem[] = [];
  const profileNames = Object.keys(data.profiles);
  const refProblem = (p: Path, name: string, kind: string, known: string[]) => {
    const hint = didYouMean(name, known);
    problems.push({
      ...at.at(p),
      message: `${p.join(".")}: no ${kind} named "${name}"${hint ? ` (did you mean "${hint}"?)` : ""}; defined: ${known.join(", ") || "none"}`,
    });
  };

  const rules = new Map<string, RuleSpec[]>();
  for (const [name, profile] of Object.entries(data.profiles)) {
    const list: RuleSpec[] = [];
    profile.rules.forEach((rule, i) => {
      const effect = "allow" in rule ? "allow" : "deny";
      const value = "allow" in rule ? rule.allow : rule.deny;
      const selectors = Array.isArray(value) ? value : [value];
      const rulePath: Path = ["profiles", name, "rules", i];
      selectors.forEach((selector, j) => {
        const resolved = resolveSelector(selector, routes);
        if (!resolved.ok) {
          problems.push({
            ...at.at(Array.isArray(value) ? [...rulePath, effect, j] : [...rulePath, effect]),
            message: resolved.error,
          });
        }
      });
      const position = at.at(rulePath);
      const source: RuleSource = { file: path, line: position.line, column: position.column };
      list.push({ effect, selectors, ...(rule.when ? { when: rule.when } : {}), source });
    });
    rules.set(name, list);
  }

  const listenerNames = (data.listeners ?? []).map((l) => l.name);
  (data.listeners ?? []).forEach((l, i) => {
    try {
      parseListener(`listeners[${i}].address`, l.address);
    } catch (error) {
      problems.push({ ...at.at(["listeners", i, "address"]), message: (error as Error).message });
    }
    if (listenerNames.indexOf(l.name) !== i)
      problems.push({ ...at.at(["listeners", i, "name"]), message: `duplicate listener name "${l.name}"` });
  });
  const clientNames = new Set<string>();
  data.clients.forEach((c, i) => {
    if (clientNames.has(c.name))
      problems.push({ ...at.at(["clients", i, "name"]), message: `duplicate client name "${c.name}"` });
    clientNames.add(c.name);
    if (!profileNames.includes(c.profile))
      refProblem(["clients", i, "profile"], c.profile, "profile", profileNames);
    const listener = c.match.listener;
    if (listener !== undefined && !listenerNames.includes(listener)) {
      refProblem(["clients", i, "match", "listener"], listener, "listener", listenerNames);
    }
    for (const [j, cidr] of (c.match.source ?? []).entries()) {
      if (!isCidr(cidr))
        problems.push({
          ...at.at(["clients", i, "match", "source", j]),
          message: `found "${cidr}"; expected an address or CIDR such as 10.0.1.0/24 or fd00::/8`,
        });
    }
    if (Object.keys(c.match).length === 0) {
      problems.push({
        ...at.at(["clients", i, "match"]),
        message: `client "${c.name}" has no match conditions; give listener, source, token or certificate`,
      });
    }
    if (c.match.certificate !== undefined) {
      const l = data.listeners?.find((x) => x.name === c.match.listener);
      if (l === undefined || l.tls?.client_ca === undefined) {
        problems.push({
          ...at.at(["clients", i, "match", "certificate"]),
          message: "certificate matching needs match.listener naming a TLS listener with client_ca",
        });
      }
    }
  });
  for (const [name, profile] of Object.entries(data.profiles)) {
    const v = profile.visibility;
    if (v === undefined) continue;
    if (v.labels === undefined && v.names === undefined)
      problems.push({
        ...at.at(["profiles", name, "visibility"]),
        message: `profiles.${name}.visibility: give labels, names or both (an object is visible when all labels match or any name does)`,
      });
    if (v.labels !== undefined && Object.keys(v.labels).length === 0)
      problems.push({
        ...at.at(["profiles", name, "visibility", "labels"]),
        message: `profiles.${name}.visibility.labels: found {}; give at least one label (an empty set would match every object)`,
      });
  }
  if (data.default_profile !== undefined && !profileNames.includes(data.default_profile)) {
    refProblem(["default_profile"], data.default_profile, "profile", profileNames);
  }
  if (problems.length > 0) throw new PolicyFileError(path, problems);
  return { path, version: createHash("sha256").update(text).digest("hex").slice(0, 12), data, rules };
}

export function isCidr(value: string): boolean {
  const [address, bits, extra] = value.split("/");
  if (extra !== undefined || address === undefined) return false;
  const family = address.includes(":") ? 6 : 4;
  const ipOk =
    family === 4
      ? /^(\d{1,3}\.){3}\d{1,3}$/.test(address) && address.split(".").every((o) => Number(o) <= 255)
      : /^[0-9a-fA-F:.]+$/.test(address);
  if (!ipOk) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

export function loadPolicyFile(path: string, routes: readonly RouteDef[]): LoadedPolicyFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new PolicyFileError(path, [
      { line: 0, column: 0, message: `cannot read the policy file: ${(error as Error).message}` },
    ]);
  }
  return parsePolicyText(path, text, routes);
}
