/**
 * Audit log and admin listener against a private dockerd: the audit file gets every decision and
 * follows log rotation on SIGUSR1; credentials and bodies are never logged; hostile targets stay
 * inside their JSON string; /metrics, /health, /ready and `portcullis healthcheck` on the admin
 * listener, which shares nothing with the API listener.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { CliOverrides } from "../../src/config/env.js";
import { startDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { CLI, startCli } from "../helpers/proxy.js";
import { httpRequest, rawExchange } from "../helpers/raw-http.js";
import { type InProcessProxy, portOf, serveInProcess } from "../helpers/serve-in-process.js";

interface Running {
  readonly port: number;
  readonly adminPort: number;
  readonly logs: Record<string, unknown>[];
  readonly serving: InProcessProxy["serving"];
  stop(): Promise<void>;
}

async function startServing(env: Record<string, string>, cli: CliOverrides = {}): Promise<Running> {
  const { serving, logs, stop } = await serveInProcess(env, cli);
  return {
    port: portOf(serving.addresses[0] as string),
    adminPort: serving.adminAddress ? portOf(serving.adminAddress) : 0,
    logs,
    serving,
    stop,
  };
}

async function get(port: number, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers, signal: AbortSignal.timeout(5000) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The CLI, run asynchronously: the proxy under test lives in this process and must keep answering. */
function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8", timeout: 10_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ status: code, stdout, stderr });
      },
    );
  });
}

/** GET with an exact Host header (fetch does not let a caller set Host). */
async function getWithHost(port: number, path: string, host: string): Promise<number | undefined> {
  const ex = await rawExchange({ port }, httpRequest("GET", path, [["Host", host]]), { responses: 1 });
  return ex.finals[0]?.status;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => Promise<boolean> | boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

const SECRETS = {
  bearer: "Bearer-token-s3cr3t-4f9a",
  registry: Buffer.from(JSON.stringify({ username: "u", password: "registry-s3cr3t-77c1" })).toString(
    "base64",
  ),
  registryPlain: "registry-s3cr3t-77c1",
  body: "body-s3cr3t-PASSWORD-91be",
};

describeWithDockerd("audit log and admin listener", {}, async (engine) => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-observability-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    SOCKET_PATH: engine.socketPath,
    PORTCULLIS_LISTEN: "tcp://127.0.0.1:0",
    PORTCULLIS_ADMIN_LISTEN: "tcp://127.0.0.1:0",
    LOG_LEVEL: "debug",
    CONTAINERS: "1",
    IMAGES: "1",
    POST: "1",
  };
  const auditPath = join(dir, "log", "audit.log");
  let proxy: Running;
  before(async () => {
    proxy = await startServing({ ...env, PORTCULLIS_AUDIT_LOG: auditPath });
  });
  after(() => proxy?.stop());

  describe("audit log", () => {
    it("never logs Authorization, X-Registry-Auth or bodies, allowed or denied", async () => {
      const headers: [string, string][] = [
        ["Authorization", `Bearer ${SECRETS.bearer}`],
        ["X-Registry-Auth", SECRETS.registry],
        ["Content-Type", "application/json"],
      ];
      const create = JSON.stringify({
        Image: engine.image,
        Cmd: ["true"],
        Env: [`PASSWORD=${SECRETS.body}`],
      });
      const requests = [
        // allowed, with a body the daemon really gets (it creates the container)
        httpRequest("POST", "/v1.41/containers/create?name=audited", headers, create),
        // allowed, a pull with registry credentials (from a closed loopback port: fails fast)
        httpRequest("POST", "/v1.41/images/create?fromImage=127.0.0.1%3A1%2Fnone&tag=x", headers, ""),
        // denied (SWARM is off), with the same credentials and body
        httpRequest("POST", "/v1.41/swarm/init", headers, SECRETS.body),
      ];
      const statuses = [];
      for (const bytes of requests) {
        const ex = await rawExchange({ port: proxy.port }, bytes, { responses: 1, timeoutMs: 15_000 });
        statuses.push(ex.finals[0]?.status);
      }
      assert.equal(statuses[0], 201);
      assert.equal(statuses[2], 403);
      await waitFor(() => readFileSync(auditPath, "utf8").includes("/swarm/init"), "the audit record");
      const file = readFileSync(auditPath, "utf8");
      const stdout = proxy.logs.map((l) => JSON.stringify(l)).join("\n");
      for (const text of [file, stdout]) {
        for (const secret of Object.values(SECRETS)) assert.ok(!text.includes(secret), `leaked ${secret}`);
        assert.ok(!/authorization|x-registry-auth/i.test(text), "no header names either");
      }
      const records = file
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const create1 = records.find((r) => r.operation === "ContainerCreate");
      assert.equal(create1?.decision, "allow");
      assert.equal(create1?.level, "info", "allowed requests are in the file, at info");
      const init = records.find((r) => r.operation === "SwarmInit");
      assert.equal(init?.decision, "deny");
      assert.equal(init?.level, "info");
      assert.equal(init?.status, 403);
    });

    it("keeps hostile targets inside their JSON string", async () => {
      // Raw CR/LF (and bytes outside printable ASCII) never get that far: Node answers 400 itself.
      const split = await rawExchange(
        { port: proxy.port },
        'GET /v1.41/containers/x\r\n{"decision":"allow","forged":2} HTTP/1.1\r\nHost: x\r\n\r\n',
        { responses: 1 },
      );
      assert.equal(split.finals[0]?.status, 400);
      // What does get through: quotes, backslashes, encoded CR/LF, markup.
      const hostile =
        '/v1.41/containers/x%0d%0a{"decision":"allow","forged":1}"\\<script>alert(1)</script>/json';
      const ex = await rawExchange({ port: proxy.port }, httpRequest("GET", hostile), { responses: 1 });
      assert.ok(ex.finals[0], "answered (refused: a decoded CR/LF is no container name)");
      await waitFor(() => readFileSync(auditPath, "utf8").includes("forged"), "the hostile record");
      const lines = readFileSync(auditPath, "utf8").trim().split("\n");
      for (const line of lines) {
        const r = JSON.parse(line) as Record<string, unknown>;
        assert.equal(r.forged, undefined, "no forged record");
      }
      const rec = lines
        .map((l) => JSON.parse(l) as { target?: string })
        .find((r) => r.target?.includes("forged"));
      assert.equal(rec?.target, hostile);
      for (const l of proxy.logs) assert.equal(l.forged, undefined);
    });

    it("the real process reopens the file on SIGUSR1 (log rotation), without opening an inspector", async () => {
      const path = join(dir, "cli-audit.log");
      const cli = await startCli(["serve", "--audit-log", path], {
        SOCKET_PATH: engine.socketPath,
        PORTCULLIS_LISTEN: "tcp://127.0.0.1:0",
      });
      try {
        const port = portOf(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/.exec(cli.output())?.[1] ?? "");
        await get(port, "/v1.41/version");
        await waitFor(
          () => existsSync(path) && readFileSync(path, "utf8").includes("/v1.41/version"),
          "first record",
        );
        renameSync(path, `${path}.1`);
        cli.child.kill("SIGUSR1");
        await waitFor(() => cli.output().includes("audit log reopened"), "the reopen log line");
        await get(port, "/_ping");
        await waitFor(
          () => existsSync(path) && readFileSync(path, "utf8").includes('"target":"/_ping"'),
          "record in the new file",
        );
        assert.ok(!readFileSync(`${path}.1`, "utf8").includes('"target":"/_ping"'));
        assert.doesNotMatch(cli.output(), /Debugger listening/);
        assert.equal(cli.child.exitCode, null, "still running");
      } finally {
        await cli.stop();
      }
    });
  });

  describe("admin listener", () => {
    it("/health and /ready (the daemon answers _ping)", async () => {
      const health = await get(proxy.adminPort, "/health");
      assert.equal(health.status, 200);
      assert.equal(JSON.parse(health.text).status, "ok");
      const ready = await get(proxy.adminPort, "/ready");
      assert.equal(ready.status, 200, ready.text);
      assert.equal(JSON.parse(ready.text).ready, true);
      assert.match(JSON.parse(ready.text).apiVersion, /^1\.\d+$/);
    });

    it("/metrics: requests by operation, decision and client; latency; open streams; policy version", async () => {
      await get(proxy.port, "/v1.41/containers/json");
      await get(proxy.port, "/v1.41/info");
      const events = startDocker(`tcp://127.0.0.1:${proxy.port}`, ["events"]);
      try {
        await waitFor(
          async () =>
            /portcullis_open_streams\{kind="stream"\} 1/.test((await get(proxy.adminPort, "/metrics")).text),
          "an open stream in /metrics",
        );
      } finally {
        await events.kill();
      }
      await waitFor(
        async () =>
          /portcullis_open_streams\{kind="stream"\} 0/.test((await get(proxy.adminPort, "/metrics")).text),
        "the stream closed in /metrics",
      );
      const m = await get(proxy.adminPort, "/metrics");
      assert.equal(m.status, 200);
      assert.match(m.headers.get("content-type") ?? "", /text\/plain/);
      assert.match(
        m.text,
        /portcullis_requests_total\{operation="ContainerList",decision="allow",client="anonymous"\} [1-9]/,
      );
      assert.match(
        m.text,
        /portcullis_requests_total\{operation="SystemInfo",decision="deny",client="anonymous"\} 1/,
      );
      assert.match(
        m.text,
        /portcullis_requests_total\{operation="SystemEvents",decision="allow",client="anonymous"\} 1/,
      );
      assert.match(m.text, /portcullis_request_duration_seconds_bucket\{le="0.1",decision="allow"\} [1-9]/);
      assert.match(m.text, /portcullis_upstream_errors_total 0/);
      const version = proxy.serving.policy().version;
      assert.match(
        m.text,
        new RegExp(`portcullis_policy_info\\{version="${version}",origin="environment toggles"\\} 1`),
      );
      assert.match(m.text, /portcullis_daemon_up 1/);
      assert.match(m.text, /process_cpu_seconds_total/);
    });

    it("shares nothing with the API listener", async () => {
      const onApi = await get(proxy.port, "/metrics");
      assert.equal(onApi.status, 404, "the API listener does not serve /metrics");
      const onAdmin = await get(proxy.adminPort, "/v1.41/containers/json");
      assert.equal(onAdmin.status, 404, "the admin listener forwards nothing");
      const post = await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`, { method: "POST" });
      assert.equal(post.status, 405);
      await post.text();
      assert.equal(await getWithHost(proxy.adminPort, "/", "evil.example:9375"), 421, "DNS-rebound Host");
      assert.equal(await getWithHost(proxy.adminPort, "/live/state", "evil.example"), 421);
      assert.equal(await getWithHost(proxy.adminPort, "/", "127.0.0.1:9375"), 200);
      assert.equal(await getWithHost(proxy.adminPort, "/", "[::1]:9375"), 200);
      assert.equal(await getWithHost(proxy.adminPort, "/metrics", "portcullis:9375"), 200, "scrapes by name");
    });

    it("portcullis healthcheck asks /ready on the admin listener when one is configured", async () => {
      const admin = `tcp://127.0.0.1:${proxy.adminPort}`;
      const ok = await runCli(["healthcheck", "--admin-listen", admin], {
        PORTCULLIS_LISTEN: "tcp://127.0.0.1:1",
      });
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /healthy: daemon answers \(admin \/ready/);
      const fallback = await runCli(["healthcheck"], { PORTCULLIS_LISTEN: `tcp://127.0.0.1:${proxy.port}` });
      assert.equal(fallback.status, 0, fallback.stderr);
      assert.match(fallback.stdout, /through the proxy/);
    });

    it("/ready, healthcheck and upstream errors when the daemon is away", async () => {
      const away = await startServing({ ...env, SOCKET_PATH: join(dir, "no-daemon.sock") });
      try {
        const r = await get(away.port, "/v1.41/containers/json");
        assert.equal(r.status, 502);
        const ready = await get(away.adminPort, "/ready");
        assert.equal(ready.status, 503);
        assert.equal(JSON.parse(ready.text).ready, false);
        assert.equal((await get(away.adminPort, "/health")).status, 200, "the process is up all the same");
        const m = await get(away.adminPort, "/metrics");
        assert.match(m.text, /portcullis_upstream_errors_total 1/);
        assert.match(m.text, /portcullis_daemon_up 0/);
        const hc = await runCli(["healthcheck", "--admin-listen", `tcp://127.0.0.1:${away.adminPort}`], {
          PORTCULLIS_LISTEN: "tcp://127.0.0.1:1",
        });
        assert.equal(hc.status, 1);
        assert.match(hc.stderr, /unhealthy: HTTP 503 from admin \/ready/);
      } finally {
        await away.stop();
      }
    });

    it("counts policy reloads and shows the version in force", async () => {
      const policyPath = join(dir, "reload.yaml");
      const policyText = (op: string) =>
        `version: 1\nprofiles:\n  p:\n    rules:\n      - allow: [SystemPing, ${op}]\ndefault_profile: p\n`;
      writeFileSync(policyPath, policyText("SystemVersion"));
      const withFile = await startServing(
        {
          SOCKET_PATH: engine.socketPath,
          PORTCULLIS_LISTEN: "tcp://127.0.0.1:0",
          LOG_LEVEL: "info",
          PORTCULLIS_ADMIN_LISTEN: "tcp://127.0.0.1:0",
        },
        { config: policyPath },
      );
      try {
        const v1 = withFile.serving.policy().version;
        writeFileSync(policyPath, policyText("SystemInfo"));
        withFile.serving.reload();
        const v2 = withFile.serving.policy().version;
        assert.notEqual(v1, v2);
        writeFileSync(policyPath, "version: 1\nprofiles: { p: { rules: [ { allow: NoSuchOperation } ] } }\n");
        withFile.serving.reload();
        const m = (await get(withFile.adminPort, "/metrics")).text;
        assert.match(m, new RegExp(`portcullis_policy_info\\{version="${v2}",origin="${policyPath}"\\} 1`));
        assert.doesNotMatch(m, new RegExp(`version="${v1}"`));
        assert.match(m, /portcullis_policy_reloads_total\{result="success"\} [1-9]/);
        assert.match(m, /portcullis_policy_reloads_total\{result="failure"\} [1-9]/);
      } finally {
        await withFile.stop();
      }
    });
  });
});
