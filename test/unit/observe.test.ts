/**
 * Observability without a daemon: audit records (escaping, no credentials), the audit file and its
 * reopen, the learned policy (valid, exact, risks marked, matches kept), suggestions for denials,
 * metrics, and the new settings.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import { parse } from "yaml";
import { loadConfig } from "../../src/config/env.js";
import { ConfigError } from "../../src/config/errors.js";
import { parsePolicyText } from "../../src/config/policy-file.js";
import { auditFile, auditLog } from "../../src/observe/audit-log.js";
import {
  LearnBook,
  learnedPolicyYaml,
  learnObserver,
  observationsFromAuditLog,
} from "../../src/observe/learn.js";
import { suggestionFor } from "../../src/observe/live.js";
import { LIVE_JS } from "../../src/observe/live-page.js";
import { createLogger } from "../../src/observe/logger.js";
import { createMetrics } from "../../src/observe/metrics.js";
import type { DecisionRecord } from "../../src/observe/observer.js";
import { filePolicy } from "../../src/policy/file-policy.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";

const dir = mkdtempSync(join(tmpdir(), "portcullis-observe-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function record(over: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    time: Date.parse("2026-01-02T03:04:05Z"),
    listener: "default",
    peer: "127.0.0.1:5555",
    client: "ci",
    profile: "ci",
    mode: "enforce",
    policyVersion: "abc123",
    method: "GET",
    target: "/v1.41/containers/json",
    operation: "ContainerList",
    decision: "allow",
    rule: "allow: ContainerList",
    reason: undefined,
    message: undefined,
    status: 200,
    durationMs: 3,
    bytesIn: 100,
    bytesOut: 200,
    ...over,
  };
}

function captured(level = "debug") {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(
        ...String(chunk)
          .split("\n")
          .filter((l) => l !== ""),
      );
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

const flushed = () => new Promise((r) => setTimeout(r, 50));

describe("audit records", () => {
  it("escape CR, LF and quotes in untrusted fields: one record stays one line", async () => {
    const { logger, lines } = captured();
    const forged = '/v1.41/containers/x\r\n{"level":"info","decision":"allow","target":"forged"}\u2028"';
    auditLog(logger).decision(
      record({ target: forged, decision: "deny", message: `denied ${forged}`, reason: "policy" }),
    );
    await flushed();
    assert.equal(lines.length, 1, lines.join("\n"));
    const parsed = JSON.parse(lines[0] as string) as Record<string, unknown>;
    assert.equal(parsed.target, forged);
    assert.equal(parsed.decision, "deny");
    assert.equal(parsed.level, "warn");
  });

  it("carry the mode and only the documented fields (no headers, no body)", async () => {
    const { logger, lines } = captured();
    auditLog(logger).decision(record({ mode: "learn", decision: "audit", rule: "default deny" }));
    await flushed();
    const parsed = JSON.parse(lines[0] as string) as Record<string, unknown>;
    assert.equal(parsed.mode, "learn");
    assert.equal(parsed.audit, "would deny");
    const fields = Object.keys(parsed).sort();
    assert.deepEqual(
      fields,
      [
        "audit",
        "bytesIn",
        "bytesOut",
        "client",
        "decision",
        "level",
        "listener",
        "method",
        "mode",
        "ms",
        "msg",
        "name",
        "operation",
        "peer",
        "policy",
        "profile",
        "rule",
        "status",
        "target",
        "time",
      ].sort(),
    );
  });

  it("the audit file gets every decision at info, and reopen() follows a rotation", () => {
    const path = join(dir, "audit", "audit.log");
    const file = auditFile(path);
    file.decision(record());
    file.decision(
      record({ decision: "deny", reason: "policy", status: 403, message: "portcullis denied x" }),
    );
    renameSync(path, `${path}.1`);
    file.decision(record({ target: "/after-rename-before-reopen" }));
    file.reopen();
    file.decision(record({ target: "/after-reopen" }));
    file.close();
    const rotated = readFileSync(`${path}.1`, "utf8").trim().split("\n");
    const fresh = readFileSync(path, "utf8").trim().split("\n");
    assert.equal(rotated.length, 3);
    assert.equal(fresh.length, 1);
    for (const line of [...rotated, ...fresh])
      assert.equal((JSON.parse(line) as { level: string }).level, "info");
    assert.equal((JSON.parse(fresh[0] as string) as { target: string }).target, "/after-reopen");
  });
});

const CURRENT = `version: 1
listeners:
  - name: main
    address: tcp://127.0.0.1:2375
  - name: traefik
    address: unix:///run/portcullis/traefik.sock
profiles:
  learner:
    mode: learn
  strict:
    rules:
      - allow: SystemPing
clients:
  - name: traefik
    profile: learner
    match: { listener: traefik }
  - name: other
    profile: strict
    match: { listener: main, source: [10.0.0.0/8] }
  - name: ci
    profile: learner
    match: { source: [127.0.0.1/32] }
default_profile: learner
`;

describe("learned policy", () => {
  const current = parsePolicyText(join(dir, "current.yaml"), CURRENT, ROUTES);
  const book = new LearnBook();
  const t = Date.parse("2026-01-02T03:04:05Z");
  for (const [client, operation, decision] of [
    ["ci", "SystemPingHead", "audit"],
    ["ci", "ContainerList", "audit"],
    ["ci", "ContainerList", "audit"],
    ["ci", "ContainerLogs", "audit"],
    ["ci", "ExecStart", "audit"],
    ["ci", "ContainerPrune", "audit"],
    ["ci", "SystemInfo", "deny"], // refused: never reached the daemon
    ["traefik", "ContainerInspect", "allow"],
    ["traefik", "SystemEvents", "audit"],
    ["anonymous", "SystemVersion", "audit"],
  ] as const) {
    book.add({ time: t, client, operation, decision });
  }
  book.add({ time: t, client: "ci", operation: null, decision: "deny" });
  const text = learnedPolicyYaml(book, current, "a test");

  it("is a valid policy file with one enforce profile per client, in the file's client order", () => {
    const loaded = parsePolicyText(join(dir, "learned.yaml"), text, ROUTES);
    assert.deepEqual(Object.keys(loaded.data.profiles).sort(), ["anonymous", "ci", "traefik"]);
    for (const p of Object.values(loaded.data.profiles)) assert.equal(p.mode, "enforce");
    assert.deepEqual(
      loaded.data.clients.map((c) => c.name),
      ["traefik", "ci"],
    );
    assert.deepEqual(loaded.data.clients[0]?.match, { listener: "traefik" });
    assert.deepEqual(loaded.data.clients[1]?.match, { source: ["127.0.0.1/32"] });
    assert.equal(loaded.data.default_profile, "anonymous");
    assert.deepEqual(loaded.data.listeners, current.data.listeners);
  });

  it("allows exactly the operations seen (denied ones excluded)", () => {
    const data = parse(text) as { profiles: Record<string, { rules: { allow: string[] }[] }> };
    assert.deepEqual(data.profiles.ci?.rules, [
      { allow: ["ContainerList", "ContainerLogs", "ContainerPrune", "ExecStart", "SystemPingHead"] },
    ]);
    assert.deepEqual(data.profiles.traefik?.rules, [{ allow: ["ContainerInspect", "SystemEvents"] }]);
    const policy = filePolicy(parsePolicyText(join(dir, "learned.yaml"), text, ROUTES), ROUTES, {});
    assert.equal(policy.clientNamed("ci")?.profile.mode, "enforce");
  });

  it("marks risky operations with their risk classes", () => {
    assert.match(text, /- ContainerLogs # risk: exfiltrate\n/);
    assert.match(text, /- ExecStart # risk: hijack, write\n/);
    assert.match(text, /- ContainerPrune # risk: write, admin\n/);
    assert.match(text, /- ContainerList\n/);
  });

  it("without a current file, clients are left as commented examples", () => {
    const bare = learnedPolicyYaml(book, undefined, "a test");
    const loaded = parsePolicyText(join(dir, "bare.yaml"), bare, ROUTES);
    assert.deepEqual(loaded.data.clients, []);
    assert.match(bare, /# {3}- name: "ci"/);
  });

  it("reads audit-log lines, learn-mode records only unless asked", () => {
    const lines = [
      JSON.stringify({
        client: "ci",
        mode: "learn",
        operation: "ContainerList",
        decision: "audit",
        time: "2026-01-01T00:00:00Z",
      }),
      JSON.stringify({
        client: "ci",
        mode: "enforce",
        operation: "ImageList",
        decision: "allow",
        time: "2026-01-01T00:00:01Z",
      }),
      JSON.stringify({ msg: "portcullis listening on ..." }),
      "not json {",
      "{broken",
    ].join("\n");
    const learnOnly = observationsFromAuditLog(lines, new Set(["learn"]));
    assert.deepEqual(
      learnOnly.observed.map((o) => o.operation),
      ["ContainerList"],
    );
    assert.equal(learnOnly.skipped, 1);
    assert.equal(observationsFromAuditLog(lines, "all").observed.length, 2);
  });

  it("the learn observer writes once debounced and at close, learn-mode records only", async () => {
    const output = join(dir, "observer.yaml");
    const { logger } = captured("silent");
    const learn = learnObserver({ output, policyFile: current, logger, debounceMs: 30 });
    learn.decision(record({ mode: "enforce", operation: "ImageList" }));
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(existsSync(output), false, "nothing learned, nothing written");
    learn.decision(record({ mode: "learn", operation: "ContainerList", decision: "audit" }));
    await new Promise((r) => setTimeout(r, 100));
    assert.match(readFileSync(output, "utf8"), /- ContainerList/);
    learn.decision(record({ mode: "learn", operation: "ContainerTop", decision: "audit" }));
    learn.close();
    const final = readFileSync(output, "utf8");
    assert.match(final, /- ContainerTop/);
    assert.doesNotMatch(final, /ImageList/);
    parsePolicyText(output, final, ROUTES);
  });
});

describe("live view", () => {
  it("suggests the rule that would allow a denial", () => {
    const denied = record({
      decision: "deny",
      reason: "policy",
      rule: "default deny",
      operation: "ContainerLogs",
    });
    assert.equal(suggestionFor(denied, "/etc/p.yaml"), 'add "- allow: ContainerLogs" to profile ci');
    assert.equal(
      suggestionFor({ ...denied, rule: "deny: exfiltrate" }, "/etc/p.yaml"),
      'add "- allow: ContainerLogs" to profile ci, above the rule "deny: exfiltrate"',
    );
    assert.equal(
      suggestionFor(
        {
          ...denied,
          message:
            "portcullis denied ContainerList (GET /v1.41/containers/json): set CONTAINERS=1 to allow it",
        },
        "environment toggles",
      ),
      "set CONTAINERS=1 to allow it",
    );
    assert.equal(suggestionFor(record(), "/etc/p.yaml"), null);
    assert.equal(suggestionFor({ ...denied, reason: "bad-target" }, "/etc/p.yaml"), null);
  });

  it("the page script never uses innerHTML, outerHTML, insertAdjacentHTML or document.write", () => {
    assert.doesNotMatch(LIVE_JS, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  });
});

describe("metrics", () => {
  it("count requests by operation, decision and client; streams; upstream errors; policy version", async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.policyLoaded("v1", "/etc/p.yaml");
    m.decision(record());
    m.decision(record({ decision: "deny", operation: null, client: "anonymous" }));
    m.streamOpened?.("stream");
    m.streamOpened?.("tunnel");
    m.streamClosed?.("tunnel");
    m.upstreamError?.();
    m.reloaded(true);
    m.policyLoaded("v2", "/etc/p.yaml");
    m.reloaded(false);
    const text = await m.registry.metrics();
    assert.match(
      text,
      /portcullis_requests_total\{operation="ContainerList",decision="allow",client="ci"\} 1/,
    );
    assert.match(text, /portcullis_requests_total\{operation="none",decision="deny",client="anonymous"\} 1/);
    assert.match(text, /portcullis_open_streams\{kind="stream"\} 1/);
    assert.match(text, /portcullis_open_streams\{kind="tunnel"\} 0/);
    assert.match(text, /portcullis_upstream_errors_total 1/);
    assert.match(text, /portcullis_policy_reloads_total\{result="success"\} 1/);
    assert.match(text, /portcullis_policy_reloads_total\{result="failure"\} 1/);
    assert.match(text, /portcullis_policy_info\{version="v2",origin="\/etc\/p.yaml"\} 1/);
    assert.doesNotMatch(text, /version="v1"/);
    assert.match(text, /portcullis_request_duration_seconds_count\{decision="allow"\} 1/);
  });
});

describe("settings", () => {
  const base = { SOCKET_PATH: "/var/run/docker.sock", PORTCULLIS_LISTEN: "tcp://127.0.0.1:2375" };
  it("are off by default", () => {
    const c = loadConfig(base);
    assert.equal(c.auditLogFile, undefined);
    assert.equal(c.adminListener, undefined);
    assert.equal(c.learnOutput, undefined);
  });
  it("come from the environment or flags (flags win)", () => {
    const c = loadConfig(
      {
        ...base,
        PORTCULLIS_AUDIT_LOG: "/var/log/a.log",
        PORTCULLIS_ADMIN_LISTEN: "tcp://127.0.0.1:9375",
        PORTCULLIS_LEARN_OUTPUT: "/tmp/l.yaml",
      },
      { auditLog: "/var/log/b.log" },
    );
    assert.equal(c.auditLogFile, "/var/log/b.log");
    assert.deepEqual(c.adminListener, { kind: "tcp", host: "127.0.0.1", port: 9375, name: "admin" });
    assert.equal(c.learnOutput, "/tmp/l.yaml");
  });
  it("refuse an admin listener on an API listener's address", () => {
    for (const [listen, admin] of [
      ["tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"],
      ["tcp://[::]:2375", "tcp://127.0.0.1:2375"],
      ["unix:///run/p.sock", "unix:///run/p.sock"],
    ] as const) {
      assert.throws(
        () => loadConfig({ ...base, PORTCULLIS_LISTEN: listen, PORTCULLIS_ADMIN_LISTEN: admin }),
        (e: unknown) => e instanceof ConfigError && /admin listener is always separate/.test(e.message),
      );
    }
    assert.throws(() => loadConfig({ ...base, PORTCULLIS_ADMIN_LISTEN: "http://x" }), ConfigError);
    loadConfig({ ...base, PORTCULLIS_ADMIN_LISTEN: "tcp://127.0.0.1:9375" });
  });
});

describe("presets", () => {
  it("every preset validates, has one profile, a default_profile and a commented client example", async () => {
    const { readdirSync } = await import("node:fs");
    const { REPO_ROOT } = await import("../helpers/proxy.js");
    const presets = join(REPO_ROOT, "presets");
    const files = readdirSync(presets).filter((f) => f.endsWith(".yaml"));
    assert.ok(files.length >= 9, files.join(", "));
    for (const f of files) {
      const text = readFileSync(join(presets, f), "utf8");
      const loaded = parsePolicyText(f, text, ROUTES);
      assert.equal(Object.keys(loaded.data.profiles).length, 1, f);
      assert.equal(loaded.data.default_profile, Object.keys(loaded.data.profiles)[0], f);
      assert.match(text, /^# clients:\n# {3}- name: /m, f);
      assert.match(text, /real-clients\.md|docker CLI/, f);
    }
    writeFileSync(join(dir, "done"), "");
  });
});
