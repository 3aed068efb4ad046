/** The real portcullis process in front of a private dockerd: unix listener, healthcheck, shutdown. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { runDocker, startDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { CLI, startCli } from "../helpers/proxy.js";

describeWithDockerd("the portcullis process", { image: false }, (engine) => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-proc-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("serves the docker CLI on a unix socket and reports healthy", async () => {
    const sock = join(dir, "proxy.sock");
    const p = await startCli(["--listen", `unix://${sock}`], {
      SOCKET_PATH: engine.socketPath,
      NETWORKS: "1",
    });
    after(() => p.stop());
    const ls = await runDocker(`unix://${sock}`, ["network", "ls", "--format", "{{.Name}}"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /bridge/);
    const hc = spawnSync(process.execPath, [CLI, "healthcheck", "--listen", `unix://${sock}`], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(hc.status, 0, hc.stderr);
    assert.match(hc.stdout, /^healthy: daemon answers through the proxy \(API 1\.41\)/);
  });

  it("exits within 2 s of SIGTERM while docker events clients are attached", async () => {
    const p = await startCli(["--listen", "tcp://127.0.0.1:0"], { SOCKET_PATH: engine.socketPath });
    after(() => p.stop());
    const port = /listening on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(p.output())?.[1];
    const watchers = [1, 2, 3].map(() => startDocker(`tcp://127.0.0.1:${port}`, ["events"]));
    after(() => Promise.all(watchers.map((w) => w.kill())));
    await new Promise((r) => setTimeout(r, 1000));
    const started = Date.now();
    p.child.kill("SIGTERM");
    const [code] = await p.exited;
    const took = Date.now() - started;
    assert.equal(code, 0);
    assert.ok(took < 2000, `took ${took} ms`);
    // The CLI sees its stream end rather than hanging.
    for (const w of watchers) await Promise.race([w.exited, new Promise((r) => setTimeout(r, 3000))]);
    assert.ok(
      watchers.every((w) => w.child.exitCode !== null || w.child.signalCode !== null),
      "docker events clients were released",
    );
  });
});
