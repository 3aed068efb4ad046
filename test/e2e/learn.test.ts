/**
 * Learning mode end to end, against a private dockerd and the real docker CLI: a client runs a
 * scripted sequence under a learn-mode profile; portcullis writes the least-privilege policy (live,
 * debounced, and at shutdown); the file validates; the same sequence under it in enforce mode gets
 * no denial, while anything else is denied. `portcullis learn --from` on the audit file gives the
 * same policy offline.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { parse } from "yaml";
import type { CliOverrides } from "../../src/config/env.js";
import { runDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { CLI } from "../helpers/proxy.js";
import { serveInProcess } from "../helpers/serve-in-process.js";

interface Running {
  readonly host: string;
  readonly logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

async function startServing(env: Record<string, string>, cli: CliOverrides): Promise<Running> {
  const { serving, logs, stop } = await serveInProcess(env, cli);
  return { host: serving.addresses[0] as string, logs, stop };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeWithDockerd("learn mode: record a client, write its policy, enforce it", {}, async (engine) => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-learn-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const policyPath = join(dir, "policy.yaml");
  const learned = join(dir, "learned.yaml");
  const auditPath = join(dir, "audit.log");
  writeFileSync(
    policyPath,
    `version: 1
profiles:
  learning:
    mode: learn
    rules:
      - allow: SystemPing
clients:
  - name: cli
    profile: learning
    match: { source: [127.0.0.1/32, "::1/128"] }
`,
  );
  const env = {
    SOCKET_PATH: engine.socketPath,
    PORTCULLIS_LISTEN: "tcp://127.0.0.1:0",
    LOG_LEVEL: "debug",
  };
  let since = "";

  before(async () => {
    const r = await runDocker(engine.host, [
      "run",
      "-d",
      "--name",
      "web",
      engine.image,
      "sh",
      "-c",
      "echo hello from web; sleep 300",
    ]);
    assert.equal(r.code, 0, r.stderr);
    since = String(Math.floor(Date.now() / 1000) - 5);
  });

  /** The scripted client: what a monitoring tool does with the docker CLI. */
  async function script(host: string): Promise<{ args: string[]; code: number | null; stderr: string }[]> {
    const until = String(Math.floor(Date.now() / 1000));
    const steps = [
      ["ps", "--format", "{{.Names}}"],
      ["inspect", "--format", "{{.State.Status}}", "web"],
      ["logs", "web"],
      ["events", "--since", since, "--until", until, "--filter", "type=container"],
      ["top", "web"],
    ];
    const results = [];
    for (const args of steps) {
      const r = await runDocker(host, args, { timeoutMs: 20_000 });
      results.push({ args, code: r.code, stderr: r.stderr });
    }
    return results;
  }

  it("learns, writes a valid least-privilege policy, and the client runs under it in enforce mode", async () => {
    const learning = await startServing(env, {
      config: policyPath,
      auditLog: auditPath,
      learnOutput: learned,
    });
    let first: Awaited<ReturnType<typeof script>>;
    try {
      first = await script(learning.host);
      for (const r of first)
        assert.equal(r.code, 0, `learn mode forwards: docker ${r.args.join(" ")}: ${r.stderr}`);
      // Debounced write while running (2 s after the first new operation).
      for (let i = 0; i < 50 && !existsSync(learned); i++) await sleep(100);
      assert.ok(existsSync(learned), "the learned policy is written while the proxy runs");
      const audited = learning.logs.filter((l) => l.decision === "audit");
      assert.ok(audited.length > 0, "unknown operations are forwarded and audited");
      assert.ok(audited.every((l) => l.mode === "learn"));
    } finally {
      await learning.stop();
    }
    const text = readFileSync(learned, "utf8");
    const data = parse(text) as {
      profiles: Record<string, { mode: string; rules: { allow: string[] }[] }>;
      clients: { name: string; profile: string; match: unknown }[];
    };
    assert.deepEqual(Object.keys(data.profiles), ["cli"]);
    assert.equal(data.profiles.cli?.mode, "enforce");
    const ops = data.profiles.cli?.rules[0]?.allow ?? [];
    for (const op of ["ContainerList", "ContainerInspect", "ContainerLogs", "SystemEvents", "ContainerTop"])
      assert.ok(ops.includes(op), `${op} in ${ops.join(", ")}`);
    assert.ok(!ops.includes("ImageList"), "only what was used");
    assert.match(text, /- ContainerLogs # risk: exfiltrate/);
    assert.deepEqual(data.clients, [
      { name: "cli", profile: "cli", match: { source: ["127.0.0.1/32", "::1/128"] } },
    ]);

    const validate = spawnSync(process.execPath, [CLI, "validate", learned], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(validate.status, 0, validate.stderr);
    assert.match(validate.stdout, /valid/);

    const enforcing = await startServing(env, { config: learned });
    try {
      const again = await script(enforcing.host);
      for (const r of again) assert.equal(r.code, 0, `enforce: docker ${r.args.join(" ")}: ${r.stderr}`);
      const denials = enforcing.logs.filter((l) => l.decision === "deny" || l.decision === "audit");
      assert.deepEqual(denials, [], "no denial for the learned sequence");
      const other = await runDocker(enforcing.host, ["images"]);
      assert.notEqual(other.code, 0);
      assert.match(other.stderr, /portcullis denied ImageList/);
      const write = await runDocker(enforcing.host, ["rm", "-f", "web"]);
      assert.match(write.stderr, /portcullis denied ContainerDelete/);
    } finally {
      await enforcing.stop();
    }
  });

  it("portcullis learn --from the audit file writes the same policy offline", () => {
    assert.ok(existsSync(auditPath), "the audit file was written by the first test");
    const r = spawnSync(process.execPath, [CLI, "learn", "--from", auditPath, "--config", policyPath], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const offline = parse(r.stdout) as Record<string, unknown>;
    const live = parse(readFileSync(learned, "utf8")) as Record<string, unknown>;
    assert.deepEqual(offline.profiles, live.profiles);
    assert.deepEqual(offline.clients, live.clients);
    const out = join(dir, "offline.yaml");
    writeFileSync(out, r.stdout);
    const validate = spawnSync(process.execPath, [CLI, "validate", out], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(validate.status, 0, validate.stderr);

    const none = spawnSync(process.execPath, [CLI, "learn", "--from", policyPath], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no usable record/);
  });
});
