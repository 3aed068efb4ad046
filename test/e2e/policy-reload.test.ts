/**
 * Reloading the policy file of the real portcullis process under load, against a private dockerd:
 * write-then-rename, in-place writes and SIGHUP swap the policy atomically (no request fails, every
 * answer is the old or the new policy's), an invalid file keeps the old policy, an open stream
 * keeps the decision it got, and every decision record names the policy version that made it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { runDocker, startDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { type CliProxy, startCli } from "../helpers/proxy.js";

const OPEN = ["SystemPing", "SystemPingHead", "SystemVersion", "SystemEvents", "containers:read"];
const CLOSED = ["SystemPing", "SystemPingHead", "SystemVersion"];

/** Generation `gen` of the policy: even ones allow ContainerList and SystemEvents, odd ones do not. */
function policyText(gen: number): string {
  return `# generation ${gen}
version: 1
listeners:
  - name: main
    address: tcp://127.0.0.1:0
profiles:
  everyone:
    rules:
      - allow: [${(gen % 2 === 0 ? OPEN : CLOSED).join(", ")}]
default_profile: everyone
`;
}
const versionOf = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 12);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The process's JSON log records, parsed incrementally from its output. */
function logOf(p: CliProxy) {
  const records: Record<string, unknown>[] = [];
  let offset = 0;
  const update = () => {
    const out = p.output();
    const end = out.lastIndexOf("\n");
    if (end < offset) return records;
    for (const line of out.slice(offset, end).split("\n")) {
      if (line.startsWith("{")) records.push(JSON.parse(line) as Record<string, unknown>);
    }
    offset = end + 1;
    return records;
  };
  return {
    records: update,
    /** Resolves with the first record from index `from` on that satisfies `pred`. */
    async waitFor(
      from: number,
      pred: (r: Record<string, unknown>) => boolean,
      what: string,
      timeoutMs = 5_000,
    ) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = update().slice(from).find(pred);
        if (found) return found;
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for ${what}; output:\n${p.output().slice(-3000)}`);
        await sleep(20);
      }
    },
  };
}

type Answer = "allow" | "deny";
type Outcome = { answer: Answer } | { failure: string };

/** GET /containers/json on a keep-alive agent: the old policy answers 200, the new 403 (or back). */
function listContainers(port: number, agent: http.Agent): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/v1.41/containers/json", agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("error", (e) => resolve({ failure: `response error: ${e.message}` }));
      res.on("end", () => {
        if (res.statusCode === 200 && body.startsWith("[")) resolve({ answer: "allow" });
        else if (res.statusCode === 403 && body.includes("portcullis denied ContainerList"))
          resolve({ answer: "deny" });
        else resolve({ failure: `unexpected ${res.statusCode}: ${body.slice(0, 200)}` });
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", (e) => resolve({ failure: `request error: ${e.message}` }));
  });
}

describeWithDockerd("policy reload with the real process", { image: false }, async (engine) => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-reload-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // At first the policy path is a symlink into a directory the watcher does not watch: a change
  // there is seen only through SIGHUP.
  const path = join(dir, "policy.yaml");
  const hidden = join(dir, "hidden");
  mkdirSync(hidden);
  writeFileSync(join(hidden, "policy.yaml"), policyText(0));
  symlinkSync(join(hidden, "policy.yaml"), path);

  let p: CliProxy;
  let log: ReturnType<typeof logOf>;
  let port = 0;
  let host = "";
  const networks: string[] = [];
  before(async () => {
    p = await startCli(["--config", path], { SOCKET_PATH: engine.socketPath, LOG_LEVEL: "debug" });
    log = logOf(p);
    const m = /listening on main=tcp:\/\/127\.0\.0\.1:(\d+)/.exec(p.output());
    assert.ok(m, p.output());
    port = Number(m[1]);
    host = `tcp://127.0.0.1:${port}`;
  });
  after(async () => {
    await p?.stop();
    for (const n of networks) await runDocker(engine.host, ["network", "rm", n]);
  });

  /** Where we are: the generation last made visible to the process, and the last one it confirmed. */
  let written = 0;
  let confirmed = 0;
  const versions = [versionOf(policyText(0))];

  /** Waits for the reload log line of generation `gen`. */
  const reloaded = async (from: number, gen: number) => {
    const version = versionOf(policyText(gen));
    versions[gen] = version;
    const r = await log.waitFor(
      from,
      (x) => String(x.msg).startsWith("policy reloaded") && x.policy === version,
      `reload to generation ${gen} (${version})`,
    );
    assert.equal(r.previous, versions[gen - 1]);
    confirmed = gen;
  };

  it("swaps policies under load: no failed request, each answer is the old or the new policy's", async () => {
    const TOTAL = 2_000;
    const WORKERS = 4;
    let sent = 0;
    let stepsDone = false;
    let afterFinal = 0;
    const outcomes: { outcome: Outcome; lo: number; hi: number }[] = [];
    const agents = Array.from({ length: WORKERS }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    const worker = async (agent: http.Agent) => {
      while (sent < TOTAL) {
        sent++;
        const lo = confirmed;
        const final = stepsDone;
        const outcome = await listContainers(port, agent);
        outcomes.push({ outcome, lo, hi: written });
        if (final) afterFinal++;
        // Paced while the policy is being rewritten, so the load spans every reload.
        if (!stepsDone) await sleep(10);
      }
    };
    const load = Promise.all(agents.map(worker));
    const mark = log.records().length;

    const steps = async () => {
      await sleep(200);
      // 1. SIGHUP: the file changes where no watcher looks; only the signal makes it count.
      let from = log.records().length;
      writeFileSync(join(hidden, "policy.yaml"), policyText(1));
      await sleep(400);
      assert.ok(
        !log
          .records()
          .slice(from)
          .some((r) => String(r.msg).startsWith("policy reloaded")),
        "nothing reloads before SIGHUP",
      );
      written = 1;
      p.child.kill("SIGHUP");
      await reloaded(from, 1);
      await sleep(150);

      // 2. An editor's write-then-rename (replacing the symlink: from now on the watcher sees the file).
      from = log.records().length;
      writeFileSync(join(dir, ".policy.yaml.swp"), policyText(2));
      written = 2;
      renameSync(join(dir, ".policy.yaml.swp"), path);
      await reloaded(from, 2);
      await sleep(150);

      // 3. An in-place write.
      from = log.records().length;
      written = 3;
      writeFileSync(path, policyText(3));
      await reloaded(from, 3);
      await sleep(150);

      // 4. An invalid file (YAML error): the old policy stays, the error is logged with its position.
      from = log.records().length;
      writeFileSync(path, "version: 1\nprofiles: {\n  everyone: [\n");
      const error = await log.waitFor(
        from,
        (x) => String(x.msg).startsWith("policy reload failed"),
        "the reload error",
      );
      assert.equal(error.level, "error");
      assert.equal(error.policy, versions[3]);
      assert.match(
        String(error.msg),
        new RegExp(`keeping version ${versions[3]}: ${path.replace(/[.]/g, "\\.")}:\\d+:\\d+: YAML: `),
      );
      await sleep(300);

      // 5. Fixed by a rename, 6. and the final policy by another.
      from = log.records().length;
      writeFileSync(join(dir, ".policy.yaml.swp"), policyText(4));
      written = 4;
      renameSync(join(dir, ".policy.yaml.swp"), path);
      await reloaded(from, 4);
      await sleep(150);
      from = log.records().length;
      writeFileSync(join(dir, ".policy.yaml.swp"), policyText(5));
      written = 5;
      renameSync(join(dir, ".policy.yaml.swp"), path);
      await reloaded(from, 5);
      stepsDone = true;
    };
    try {
      await steps();
    } finally {
      stepsDone = true;
      await load;
      for (const a of agents) a.destroy();
    }

    const failures = outcomes.filter((o) => "failure" in o.outcome);
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${outcomes.length} requests failed`);
    assert.equal(outcomes.length, TOTAL);
    const answerOf = (gen: number): Answer => (gen % 2 === 0 ? "allow" : "deny");
    const inconsistent = outcomes.filter(({ outcome, lo, hi }) => {
      const answer = (outcome as { answer: Answer }).answer;
      for (let g = lo; g <= hi; g++) if (answerOf(g) === answer) return false;
      return true;
    });
    assert.deepEqual(inconsistent.slice(0, 5), [], "an answer that neither the old nor the new policy gives");
    const count = (a: Answer) =>
      outcomes.filter((o) => "answer" in o.outcome && o.outcome.answer === a).length;
    assert.ok(count("allow") > 100 && count("deny") > 100, `allow ${count("allow")}, deny ${count("deny")}`);
    assert.ok(afterFinal >= 50, `only ${afterFinal} requests after the final reload`);

    // The log: every decision names the policy version that made it, and agrees with it.
    // (a record is written after its response, and the log is flushed asynchronously)
    const isList = (r: Record<string, unknown>) =>
      r.operation === "ContainerList" && r.decision !== undefined;
    await log.waitFor(
      mark,
      () => log.records().slice(mark).filter(isList).length >= TOTAL,
      `${TOTAL} ContainerList decision records`,
    );
    const decisions = log
      .records()
      .slice(mark)
      .filter((r) => r.decision !== undefined);
    for (const r of decisions) {
      const gen = versions.indexOf(String(r.policy));
      assert.ok(gen >= 0, `decision record with policy ${String(r.policy)}: ${JSON.stringify(r)}`);
      if (r.operation === "ContainerList") assert.equal(r.decision, answerOf(gen), JSON.stringify(r));
    }
    const seen = new Set(decisions.map((r) => r.policy));
    assert.deepEqual(
      versions.filter((v) => !seen.has(v)),
      [],
      "every generation decided some requests",
    );
    // Keep-alive: the 2,000 requests came over a handful of connections.
    const peers = new Set(decisions.map((r) => r.peer));
    assert.ok(peers.size <= WORKERS * 2, `${peers.size} connections`);

    // After the final reload, decisions follow the new policy.
    const ps = await runDocker(host, ["ps"]);
    assert.notEqual(ps.code, 0);
    assert.match(ps.stderr, /portcullis denied ContainerList/);
  });

  it("keeps an open docker events stream across a reload that now denies it", async () => {
    // Back to a policy that allows events.
    let from = log.records().length;
    writeFileSync(path, policyText(6));
    written = 6;
    await reloaded(from, 6);
    const events = startDocker(host, [
      "events",
      "--filter",
      "type=network",
      "--format",
      "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    after(() => events.kill());
    try {
      await sleep(300);
      networks.push("pc-reload-a");
      assert.equal((await runDocker(engine.host, ["network", "create", "pc-reload-a"])).code, 0);
      await events.waitForOutput(/create pc-reload-a/);

      from = log.records().length;
      writeFileSync(path, policyText(7));
      written = 7;
      await reloaded(from, 7);
      const denied = await runDocker(host, ["events", "--since", "0s", "--until", "1s"], {
        timeoutMs: 10_000,
      });
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /portcullis denied SystemEvents/);

      networks.push("pc-reload-b");
      assert.equal((await runDocker(engine.host, ["network", "create", "pc-reload-b"])).code, 0);
      await events.waitForOutput(/create pc-reload-b/);
      assert.equal(events.child.exitCode, null, "the stream is still open");
    } finally {
      await events.kill();
    }
    // The stream's record, written when it ended, names the version that allowed it.
    const opened = await log.waitFor(
      0,
      (r) => r.operation === "SystemEvents" && r.decision === "allow",
      "the events stream's decision record",
    );
    assert.equal(opened.policy, versions[6]);
    const refused = log.records().find((r) => r.operation === "SystemEvents" && r.decision === "deny");
    assert.equal(refused?.policy, versions[7]);
  });

  it("keeps the running policy when the new file does not validate, and says why", async () => {
    const from = log.records().length;
    writeFileSync(path, policyText(8).replace("SystemPing,", "SystemPnig,"));
    const error = await log.waitFor(
      from,
      (x) => String(x.msg).startsWith("policy reload failed"),
      "the reload error",
    );
    assert.match(
      String(error.msg),
      /policy\.yaml:9:\d+: unknown operation "SystemPnig" \(did you mean "SystemPing"\?\)/,
    );
    assert.equal(error.policy, versions[7]);
    const r = await listContainers(port, new http.Agent());
    assert.deepEqual(r, { answer: "deny" });
    // SIGHUP on an unchanged (still invalid) file: the same error, the same policy.
    p.child.kill("SIGHUP");
    await log.waitFor(
      from + 1,
      (x) => String(x.msg).startsWith("policy reload failed") && x !== error,
      "the second reload error",
    );
    const version = await runDocker(host, ["version", "--format", "{{.Server.APIVersion}}"]);
    assert.equal(version.code, 0, version.stderr);
  });
});
