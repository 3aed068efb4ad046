/**
 * The real docker CLI through portcullis against a private dockerd: the drop-in behaviour of the
 * Tecnativa toggles, with streams and hijacked connections.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { runDocker, startDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";

/** A describe block with its own proxy configured by `env`, in front of `socketPath`. */
function withProxy(
  name: string,
  socketPath: () => string,
  env: Record<string, string>,
  body: (proxy: () => TestProxy) => void,
) {
  describe(name, () => {
    let proxy: TestProxy | undefined;
    before(async () => {
      proxy = await startProxy(socketPath(), env);
    });
    after(() => proxy?.stop());
    body(() => proxy as TestProxy);
  });
}

const denied = (stderr: string, operation: string) =>
  new RegExp(`Error response from daemon: portcullis denied ${operation} \\(`).test(stderr);

describeWithDockerd("docker CLI through portcullis", { swarm: true }, async (engine) => {
  const direct = engine.host;
  const image = engine.image;
  const sock = () => engine.socketPath;
  // A long-running container to read, exec into and attach to, created behind the proxy's back.
  /** `docker events` through the proxy, silent for `quietMs`, then sees a network created behind its back. */
  const networkEventArrives = async (host: string, name: string, quietMs: number) => {
    const events = startDocker(host, [
      "events",
      "--filter",
      "type=network",
      "--format",
      "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    try {
      await new Promise((r) => setTimeout(r, quietMs));
      assert.equal((await runDocker(direct, ["network", "create", name])).code, 0);
      await events.waitForOutput(new RegExp(`create ${name}`), 10_000);
    } finally {
      await events.kill();
      await runDocker(direct, ["network", "rm", name]);
    }
  };
  const created = await runDocker(direct, [
    "run",
    "-d",
    "--name",
    "sleeper",
    image,
    "sh",
    "-c",
    "echo ready; sleep 600",
  ]);
  assert.equal(created.code, 0, created.stderr);

  withProxy("with the default toggles", sock, {}, (proxy) => {
    it("serves docker version", async () => {
      const r = await runDocker(proxy().host, ["version", "--format", "{{.Server.APIVersion}}"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "1.41");
    });

    it("streams docker events", () => networkEventArrives(proxy().host, "evnet", 500));

    it("denies docker ps with a message naming the operation and the toggle", async () => {
      const r = await runDocker(proxy().host, ["ps"]);
      assert.notEqual(r.code, 0);
      assert.ok(denied(r.stderr, "ContainerList"), r.stderr);
      assert.match(r.stderr, /set CONTAINERS=1 to allow it/);
    });
  });

  withProxy("with CONTAINERS=1", sock, { CONTAINERS: "1" }, (proxy) => {
    it("lists, inspects and reads logs", async () => {
      const ps = await runDocker(proxy().host, ["ps", "--format", "{{.Names}}"]);
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, /sleeper/);
      const inspect = await runDocker(proxy().host, ["inspect", "--format", "{{.State.Running}}", "sleeper"]);
      assert.equal(inspect.stdout.trim(), "true", inspect.stderr);
      const logs = await runDocker(proxy().host, ["logs", "sleeper"]);
      assert.equal(logs.stdout.trim(), "ready", logs.stderr);
    });

    it("denies run, stop and rm", async () => {
      const run = await runDocker(proxy().host, ["run", "--rm", image, "true"]);
      assert.ok(denied(run.stderr, "ContainerCreate"), run.stderr);
      const stop = await runDocker(proxy().host, ["stop", "sleeper"]);
      assert.ok(denied(stop.stderr, "ContainerStop"), stop.stderr);
      const rm = await runDocker(proxy().host, ["rm", "-f", "sleeper"]);
      assert.ok(denied(rm.stderr, "ContainerDelete"), rm.stderr);
      const still = await runDocker(direct, ["inspect", "--format", "{{.State.Running}}", "sleeper"]);
      assert.equal(still.stdout.trim(), "true");
    });
  });

  withProxy("with CONTAINERS=1 EXEC=1 POST=1", sock, { CONTAINERS: "1", EXEC: "1", POST: "1" }, (proxy) => {
    it("runs a container and returns its output", async () => {
      const r = await runDocker(proxy().host, ["run", "--rm", image, "echo", "hello from busybox"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "hello from busybox");
    });

    it("pipes stdin through docker run -i and gets the output back (half-close)", async () => {
      const input = `${"x".repeat(100_000)}\nend\n`;
      const r = await runDocker(proxy().host, ["run", "-i", "--rm", image, "cat"], { input });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, input);
    });

    it("pipes stdin through docker exec -i", async () => {
      const r = await runDocker(proxy().host, ["exec", "-i", "sleeper", "cat"], { input: "via exec\n" });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "via exec\n");
    });

    it("returns an exec's exit code", async () => {
      const r = await runDocker(proxy().host, ["exec", "sleeper", "sh", "-c", "exit 3"]);
      assert.equal(r.code, 3, r.stderr);
    });

    it("attaches to a running container", async () => {
      assert.equal(
        (await runDocker(direct, ["run", "-d", "-i", "--name", "attachee", image, "cat"])).code,
        0,
      );
      // docker attach keeps running after stdin's EOF (also without a proxy): read the echo, then stop it.
      const attach = startDocker(proxy().host, ["attach", "--sig-proxy=false", "attachee"]);
      // Keep stdin open (an early EOF races the attach); write until cat echoes, bounded.
      const writer = setInterval(() => attach.child.stdin?.write("attached\n"), 300);
      try {
        await attach.waitForOutput(/attached\n/, 10_000);
        clearInterval(writer);
      } finally {
        clearInterval(writer);
        await attach.kill();
        await runDocker(direct, ["rm", "-f", "attachee"]);
      }
    });

    it("follows logs as they are written", async () => {
      assert.equal(
        (
          await runDocker(direct, [
            "run",
            "-d",
            "--name",
            "ticker",
            image,
            "sh",
            "-c",
            "i=0; while [ $i -lt 100 ]; do echo tick$i; i=$((i+1)); sleep 0.2; done",
          ])
        ).code,
        0,
      );
      const follow = startDocker(proxy().host, ["logs", "-f", "ticker"]);
      try {
        await follow.waitForOutput(/tick3\n/, 10_000);
      } finally {
        await follow.kill();
        await runDocker(direct, ["rm", "-f", "ticker"]);
      }
    });

    it("stops and removes containers", async () => {
      assert.equal(
        (await runDocker(direct, ["run", "-d", "--name", "victim", image, "sleep", "600"])).code,
        0,
      );
      const stop = await runDocker(proxy().host, ["stop", "-t", "1", "victim"]);
      assert.equal(stop.code, 0, stop.stderr);
      const rm = await runDocker(proxy().host, ["rm", "victim"]);
      assert.equal(rm.code, 0, rm.stderr);
    });
  });

  withProxy("with ALLOW_START=1 and nothing else", sock, { ALLOW_START: "1" }, (proxy) => {
    it("starts a stopped container but cannot remove it", async () => {
      assert.equal((await runDocker(direct, ["create", "--name", "startme", image, "sleep", "600"])).code, 0);
      const start = await runDocker(proxy().host, ["start", "startme"]);
      assert.equal(start.code, 0, start.stderr);
      const running = await runDocker(direct, ["inspect", "--format", "{{.State.Running}}", "startme"]);
      assert.equal(running.stdout.trim(), "true");
      const rm = await runDocker(proxy().host, ["rm", "-f", "startme"]);
      assert.ok(denied(rm.stderr, "ContainerDelete"), rm.stderr);
      await runDocker(direct, ["rm", "-f", "startme"]);
    });
  });

  withProxy(
    "with SERVICES=1 TASKS=1 NETWORKS=1 (the Traefik-on-workers pattern)",
    sock,
    { SERVICES: "1", TASKS: "1", NETWORKS: "1" },
    (proxy) => {
      before(async () => {
        const r = await runDocker(direct, [
          "service",
          "create",
          "--detach",
          "--name",
          "web",
          image,
          "sleep",
          "600",
        ]);
        assert.equal(r.code, 0, r.stderr);
      });
      after(() => runDocker(direct, ["service", "rm", "web"]));

      it("lists services, tasks and networks", async () => {
        const ls = await runDocker(proxy().host, ["service", "ls", "--format", "{{.Name}}"]);
        assert.equal(ls.code, 0, ls.stderr);
        assert.match(ls.stdout, /web/);
        const ps = await runDocker(proxy().host, ["service", "ps", "web", "--format", "{{.Name}}"]);
        assert.equal(ps.code, 0, ps.stderr);
        assert.match(ps.stdout, /web\.1/);
        const net = await runDocker(proxy().host, ["network", "ls", "--format", "{{.Name}}"]);
        assert.equal(net.code, 0, net.stderr);
        assert.match(net.stdout, /ingress/);
      });

      it("denies service create", async () => {
        const r = await runDocker(proxy().host, [
          "service",
          "create",
          "--detach",
          "--name",
          "intruder",
          image,
          "sleep",
          "1",
        ]);
        assert.ok(denied(r.stderr, "ServiceCreate"), r.stderr);
        const ls = await runDocker(direct, ["service", "ls", "--format", "{{.Name}}"]);
        assert.doesNotMatch(ls.stdout, /intruder/);
      });
    },
  );

  withProxy(
    "with idle timeouts far shorter than the stream",
    sock,
    { PORTCULLIS_KEEPALIVE_TIMEOUT_MS: "1000", PORTCULLIS_HEADERS_TIMEOUT_MS: "1000" },
    (proxy) => {
      it("keeps a silent docker events stream open past every timeout", () =>
        networkEventArrives(proxy().host, "latenet", 3500));
    },
  );
});
