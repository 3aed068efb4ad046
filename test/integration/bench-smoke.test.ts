/**
 * The benchmark cannot rot: `node dist/bench/run.js --smoke` (private dockerd, HAProxy with the
 * Tecnativa config, the real portcullis CLI; tiny counts, no thresholds) must run every scenario
 * against all three targets and write its JSON. Skipped, with the harness's message, when no
 * private engine (or no haproxy / wrk) can run here; under CI=true it must run.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { dockerdSkipReason } from "../helpers/dockerd.js";

/** This file runs as dist/test/integration/bench-smoke.test.js. */
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => {
    try {
      return d !== "" && statSync(join(d, cmd)).isFile();
    } catch {
      return false;
    }
  });
}

function skipReason(): string | undefined {
  const engine = dockerdSkipReason(); // throws under CI=true when no engine can run
  if (engine) return engine;
  const missing = ["haproxy", "wrk"].filter((c) => !onPath(c));
  if (missing.length === 0) return undefined;
  const msg = `the bench needs ${missing.join(" and ")} on PATH (apt-get install haproxy wrk)`;
  if (process.env.CI === "true") throw new Error(`CI=true but ${msg}`);
  return msg;
}

const skip = skipReason();

interface BenchJson {
  mode: string;
  machine: { nproc: number; node: string; dockerd: string; haproxy: string };
  metrics: { key: string; samples: Record<string, number[]> }[];
  errors: { scenario: string; error: string }[];
}

describe("npm run bench -- --smoke", { skip: skip ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-smoke-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs every scenario against direct, HAProxy and portcullis", { timeout: 300_000 }, async () => {
    const out = join(dir, "smoke.json");
    const child = spawn(
      process.execPath,
      [join(REPO_ROOT, "dist", "bench", "run.js"), "--smoke", "--out", out],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    child.stdout.on("data", (b) => {
      output += b;
    });
    child.stderr.on("data", (b) => {
      output += b;
    });
    const timer = setTimeout(() => child.kill("SIGINT"), 280_000);
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    clearTimeout(timer);
    assert.equal(code, 0, `bench --smoke exited ${code}:\n${output.slice(-6000)}`);

    const json = JSON.parse(readFileSync(out, "utf8")) as BenchJson;
    assert.equal(json.mode, "smoke");
    assert.deepEqual(json.errors, []);
    assert.ok(json.machine.nproc >= 1 && json.machine.node.startsWith("v"), "machine info recorded");
    const has = (key: string, targets: string[]) => {
      const m = json.metrics.find((x) => x.key === key);
      assert.ok(m, `metric ${key} missing`);
      for (const t of targets) {
        const xs = m.samples[t] ?? [];
        assert.ok(
          xs.length > 0 && xs.every((x) => Number.isFinite(x) && x >= 0),
          `${key}: no sample for ${t}`,
        );
      }
    };
    const all = ["direct", "haproxy", "portcullis"];
    has("small.ping.c4.rps", all);
    has("small.list.c4.rps", all);
    has("small.inspect.c4.p99", all);
    has("churn.ping.c4.rps", all);
    has("bulk.get.mbps", all);
    has("bulk.load.mbps", all);
    has("hijack.exec.mbps", ["direct", "portcullis"]);
    has("hijack.attach.mbps", all);
    has("events.delivered", all);
    has("events.rss", ["haproxy", "portcullis"]);
    has("memory.idle", ["haproxy", "portcullis"]);
    has("memory.keepalive", ["haproxy", "portcullis"]);
    has("startup.accept", ["haproxy", "portcullis"]);
    // every event subscriber got every event through each target
    const delivered = json.metrics.find((x) => x.key === "events.delivered");
    const subscribers = json.metrics.find((x) => x.key === "events.subscribers");
    for (const t of all) assert.deepEqual(delivered?.samples[t], subscribers?.samples[t], `events via ${t}`);
  });
});
