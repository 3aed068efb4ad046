/**
 * Tests of the test harness itself: a private Docker engine (swarm + busybox image)
 * can be started, used with the real docker CLI, and stopped without leftovers;
 * two engines can run side by side.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, describe, it } from "node:test";
import { runDocker, startDocker } from "../helpers/docker-cli.js";
import { dockerdSkipReason, type PrivateDockerd, pidsMentioning, startDockerd } from "../helpers/dockerd.js";

const skip = dockerdSkipReason();

function assertGone(engine: PrivateDockerd): void {
  let alive = true;
  try {
    process.kill(engine.pid, 0);
  } catch {
    alive = false;
  }
  assert.equal(alive, false, `dockerd pid ${engine.pid} still running`);
  assert.deepEqual(pidsMentioning(engine.dir), [], "processes still mention the engine dir");
  assert.equal(existsSync(engine.dir), false, `${engine.dir} not removed`);
  assert.equal(
    existsSync(`/sys/class/net/pcb${engine.subnet.split(".")[1]}`),
    false,
    "private bridge not removed",
  );
}

describe("private dockerd harness (swarm + image)", { skip: skip ?? false }, () => {
  let engine: PrivateDockerd | undefined;
  after(async () => {
    await engine?.stop();
  });

  it("starts", { timeout: 120_000 }, async () => {
    engine = await startDockerd({ swarm: true });
    assert.ok(engine.socketPath.length < 108, "socket path fits sun_path");
    assert.equal(engine.swarm, true);
    assert.equal(engine.image, "portcullis-busybox:test");
    console.log(
      `# engine ${engine.dir}: ${engine.storageDriver}, ${engine.subnet}; daemon ${engine.timings.daemon} ms, swarm ${engine.timings.swarm} ms, image ${engine.timings.image} ms`,
    );
  });

  it("answers docker version", async () => {
    assert.ok(engine, "engine did not start");
    const r = await runDocker(engine.host, ["version", "--format", "{{.Server.APIVersion}}"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^1\.\d+$/);
  });

  it("runs a busybox container", { timeout: 60_000 }, async () => {
    assert.ok(engine, "engine did not start");
    const r = await runDocker(engine.host, ["run", "--rm", engine.image, "echo", "hi"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hi\n");
  });

  it("passes stdin and reports exit codes", { timeout: 60_000 }, async () => {
    assert.ok(engine, "engine did not start");
    const r = await runDocker(engine.host, ["run", "--rm", "-i", engine.image, "sh", "-c", "wc -c; exit 3"], {
      input: "12345",
    });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout.trim(), "5");
  });

  it("is a swarm manager", async () => {
    assert.ok(engine, "engine did not start");
    const r = await runDocker(engine.host, ["service", "ls"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ID\s+NAME/);
    const info = await runDocker(engine.host, [
      "info",
      "--format",
      "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]);
    assert.equal(info.stdout.trim(), "active true");
  });

  it("streams events from a long-running CLI", { timeout: 60_000 }, async () => {
    assert.ok(engine, "engine did not start");
    const ev = startDocker(engine.host, [
      "events",
      "--format",
      "{{.Type}} {{.Action}}",
      "--filter",
      "type=container",
    ]);
    try {
      await new Promise((r) => setTimeout(r, 300)); // let the events stream attach
      const run = await runDocker(engine.host, ["run", "--rm", engine.image, "true"]);
      assert.equal(run.code, 0, run.stderr);
      await ev.waitForOutput(/container destroy/);
    } finally {
      await ev.kill();
    }
  });

  it("reports a CLI timeout", async () => {
    assert.ok(engine, "engine did not start");
    const r = await runDocker(engine.host, ["run", "--rm", engine.image, "sleep", "30"], {
      timeoutMs: 1_500,
    });
    assert.equal(r.timedOut, true);
    assert.equal(r.code, null);
    assert.match(r.stderr, /timed out/);
  });

  it("stop() leaves nothing behind and is idempotent", { timeout: 60_000 }, async () => {
    assert.ok(engine, "engine did not start");
    await engine.stop();
    await engine.stop();
    assertGone(engine);
  });
});

describe("two private engines at once", { skip: skip ?? false }, () => {
  const engines: PrivateDockerd[] = [];
  after(async () => {
    await Promise.all(engines.map((e) => e.stop()));
  });

  it("start side by side without colliding", { timeout: 180_000 }, async () => {
    const started = await Promise.allSettled([
      startDockerd({ swarm: true, tcp: true }),
      startDockerd({ swarm: true }),
    ]);
    for (const s of started) if (s.status === "fulfilled") engines.push(s.value);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const [a, b] = engines as [PrivateDockerd, PrivateDockerd];
    assert.notEqual(a.subnet, b.subnet);
    assert.notEqual(a.dir, b.dir);
    assert.ok(a.tcpAddress, "tcp address");
    assert.equal(b.tcpAddress, undefined);

    // the CLI over TCP reaches engine a
    const v = await runDocker(`tcp://${a.tcpAddress}`, ["version", "--format", "{{.Server.Version}}"]);
    assert.equal(v.code, 0, v.stderr);

    // a container on each, each sees only its own
    const [ra, rb] = await Promise.all([
      runDocker(a.host, ["run", "-d", "--name", "only-on-a", a.image, "sleep", "300"]),
      runDocker(b.host, ["run", "-d", "--name", "only-on-b", b.image, "sleep", "300"]),
    ]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const la = await runDocker(a.host, ["ps", "--format", "{{.Names}}"]);
    const lb = await runDocker(b.host, ["ps", "--format", "{{.Names}}"]);
    assert.equal(la.stdout.trim(), "only-on-a");
    assert.equal(lb.stdout.trim(), "only-on-b");

    // each container got an address from its own engine's /16
    const ipa = await runDocker(a.host, [
      "inspect",
      "--format",
      "{{.NetworkSettings.IPAddress}}",
      "only-on-a",
    ]);
    const ipb = await runDocker(b.host, [
      "inspect",
      "--format",
      "{{.NetworkSettings.IPAddress}}",
      "only-on-b",
    ]);
    assert.ok(ipa.stdout.startsWith(a.subnet.split(".").slice(0, 2).join(".")), ipa.stdout);
    assert.ok(ipb.stdout.startsWith(b.subnet.split(".").slice(0, 2).join(".")), ipb.stdout);

    // user-defined networks and swarm services on both
    for (const e of [a, b]) {
      const n = await runDocker(e.host, ["network", "create", "harness-net"]);
      assert.equal(n.code, 0, n.stderr);
      const s = await runDocker(e.host, [
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "harness-svc",
        e.image,
        "sleep",
        "300",
      ]);
      assert.equal(s.code, 0, s.stderr);
    }

    // stopping a leaves b untouched
    await a.stop();
    assertGone(a);
    const still = await runDocker(b.host, ["ps", "--format", "{{.Names}}", "--filter", "name=only-on-b"]);
    assert.equal(still.code, 0, still.stderr);
    assert.equal(still.stdout.trim(), "only-on-b");
    await b.stop();
    assertGone(b);
  });
});
