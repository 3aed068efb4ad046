/** The real portcullis process without a daemon: start-up errors, listeners, and a daemon that is away. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLI, startCli } from "../helpers/proxy.js";

function get(options: http.RequestOptions): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(options, (res) => {
        let body = "";
        res.on("data", (c) => {
          body += c;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
        );
      })
      .on("error", reject);
  });
}

const portOf = (output: string) => Number(/listening on tcp:\/\/[^ ,]*:(\d+)/.exec(output)?.[1]);

describe("portcullis start-up", () => {
  it("stops on an invalid toggle with the variable, its value and what is accepted", () => {
    const r = spawnSync(process.execPath, [CLI], {
      env: { CONTAINERS: "enabled" },
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr.trim(),
      'portcullis: invalid CONTAINERS="enabled": expected 0 or 1 (any integer: 0 is off), true/false, yes/no, on/off',
    );
  });

  it("stops on a bad listener address, saying which forms are accepted", () => {
    const r = spawnSync(process.execPath, [CLI, "--listen", "0.0.0.0:2375"], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /invalid --listen="0.0.0.0:2375": expected tcp:\/\/HOST:PORT/);
  });

  it("prints usage with --help", () => {
    const r = spawnSync(process.execPath, [CLI, "--help"], { encoding: "utf8", timeout: 10_000 });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /portcullis healthcheck/);
    assert.match(r.stdout, /ALLOW_START/);
  });

  it("reports a port already in use instead of crashing silently", async () => {
    const first = await startCli(["--listen", "tcp://127.0.0.1:0"], { SOCKET_PATH: "/nonexistent.sock" });
    after(() => first.stop());
    const port = portOf(first.output());
    const second = spawnSync(process.execPath, [CLI, "--listen", `tcp://127.0.0.1:${port}`], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(second.status, 1);
    assert.match(second.stdout, /could not start on tcp:\/\/127\.0\.0\.1:\d+: listen EADDRINUSE/);
  });
});

describe("portcullis while the daemon is away", () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-cli-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("logs one start-up line with listeners, upstream and the effective allow list", async () => {
    const p = await startCli(["--listen", "tcp://127.0.0.1:0"], {
      SOCKET_PATH: join(dir, "missing.sock"),
      CONTAINERS: "1",
    });
    after(() => p.stop());
    const line = JSON.parse(p.output().split("\n")[0] as string);
    assert.deepEqual(line.allow, ["CONTAINERS(read)", "EVENTS(read)", "PING(read)", "VERSION(read)"]);
    assert.equal(line.upstream, `unix://${join(dir, "missing.sock")}`);
    assert.match(line.listeners[0], /^tcp:\/\/127\.0\.0\.1:\d+$/);
  });

  it("answers a Docker-format 502 and healthcheck says unhealthy", async () => {
    const p = await startCli(["--listen", `unix://${join(dir, "p.sock")}`], {
      SOCKET_PATH: join(dir, "missing.sock"),
    });
    after(() => p.stop());
    const r = await get({ socketPath: join(dir, "p.sock"), path: "/_ping" });
    assert.equal(r.status, 502);
    assert.equal(r.type, "application/json");
    assert.match(
      JSON.parse(r.body).message,
      /could not reach the Docker daemon at unix:\/\/.*missing\.sock.*ENOENT/,
    );
    const hc = spawnSync(
      process.execPath,
      [CLI, "healthcheck", "--listen", `unix://${join(dir, "p.sock")}`],
      {
        encoding: "utf8",
        timeout: 10_000,
      },
    );
    assert.equal(hc.status, 1);
    assert.match(hc.stderr, /^unhealthy: HTTP 502/);
  });

  it("creates its unix socket with mode 0660 by default and the mode asked for", async () => {
    const a = await startCli(
      ["--listen", `unix://${join(dir, "a.sock")}`, "--listen", `unix://${join(dir, "b.sock")}?mode=0600`],
      {},
    );
    after(() => a.stop());
    assert.equal(statSync(join(dir, "a.sock")).mode & 0o777, 0o660);
    assert.equal(statSync(join(dir, "b.sock")).mode & 0o777, 0o600);
  });

  it("listens on IPv6 loopback when asked", async (t) => {
    const p = await startCli(["--listen", "tcp://[::1]:0"], { SOCKET_PATH: join(dir, "missing.sock") });
    after(() => p.stop());
    if (/EADDRNOTAVAIL|EAFNOSUPPORT/.test(p.output())) {
      t.skip("no IPv6 loopback on this machine");
      return;
    }
    const port = Number(/listening on tcp:\/\/\[::1\]:(\d+)/.exec(p.output())?.[1]);
    const r = await get({ host: "::1", port, path: "/v1.41/containers/json" });
    assert.equal(r.status, 403);
  });
});
