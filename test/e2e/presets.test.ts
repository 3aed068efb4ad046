/**
 * Every preset in presets/, in enforce mode, in front of a private single-node Swarm manager with
 * real objects (labelled containers, an unhealthy one, a service with a running task, networks):
 * the client's documented call sequence (real-clients.md, request by request, with its exact
 * targets and framing) is allowed and gets the daemon's own answer (a `Server: Docker/...` header,
 * never portcullis's 403); a few calls the client never makes are denied with 403.
 * The CI-runner preset is replayed with the real docker CLI.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { serve } from "../../src/cli/serve.js";
import { loadConfig } from "../../src/config/env.js";
import { createLogger } from "../../src/observe/logger.js";
import { runDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd, type PrivateDockerd } from "../helpers/dockerd.js";
import { REPO_ROOT } from "../helpers/proxy.js";
import { httpRequest, rawExchange } from "../helpers/raw-http.js";

interface Preset {
  readonly port: number;
  readonly logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

async function startPreset(name: string, socketPath: string): Promise<Preset> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const env = { SOCKET_PATH: socketPath, PORTCULLIS_LISTEN: "tcp://127.0.0.1:0", LOG_LEVEL: "info" };
  const config = loadConfig(env, { config: join(REPO_ROOT, "presets", `${name}.yaml`) });
  const serving = await serve(config, createLogger(config.logLevel, sink), env);
  const address = serving.addresses[0] as string;
  return { port: Number(address.slice(address.lastIndexOf(":") + 1)), logs, stop: () => serving.close(200) };
}

interface Answer {
  readonly status: number;
  /** The Server header: dockerd sends `Docker/<version> (linux)`, portcullis's own answers have none. */
  readonly server: string | undefined;
  readonly body: string;
}

interface CallOptions {
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: string;
  /** A long-lived stream (events, stats, logs -f): read the head, then hang up. */
  readonly stream?: boolean;
}

async function call(port: number, method: string, target: string, opts: CallOptions = {}): Promise<Answer> {
  const headers = [...(opts.headers ?? [])];
  if (opts.body !== undefined) headers.push(["Content-Type", "application/json"]);
  const bytes = httpRequest(method, target, headers, opts.body);
  const ex = await rawExchange(
    { port },
    bytes,
    opts.stream
      ? { headGraceMs: 200, timeoutMs: 10_000 }
      : { responses: 1, settleMs: 5, timeoutMs: 30_000, methods: [method] },
  );
  const raw = ex.raw.toString("latin1");
  const head = raw.slice(0, raw.indexOf("\r\n\r\n"));
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  return {
    status,
    server: /\r\nserver: ([^\r\n]*)/i.exec(head)?.[1],
    body: ex.finals[0]?.body.toString("utf8") ?? "",
  };
}

type Step = readonly [method: string, target: string, opts?: CallOptions & { anyStatus?: boolean }];

/** Replays `steps`; each must reach the daemon and, unless `anyStatus`, succeed there. */
async function replay(preset: Preset, steps: readonly Step[]): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const [method, target, opts] of steps) {
    const a = await call(preset.port, method, target, opts);
    const what = `${method} ${target} -> ${a.status} ${a.body.slice(0, 200)}`;
    assert.notEqual(a.status, 403, `denied: ${what}`);
    assert.match(a.server ?? "", /^Docker\//, `not the daemon's answer: ${what}`);
    if (!opts?.anyStatus) assert.ok(a.status >= 200 && a.status < 300, what);
    answers.push(a);
  }
  assert.deepEqual(
    preset.logs.filter((l) => l.decision === "deny").map((l) => l.msg),
    [],
    "no denial in the log",
  );
  return answers;
}

async function expectDenied(preset: Preset, steps: readonly Step[]): Promise<void> {
  for (const [method, target, opts] of steps) {
    const a = await call(preset.port, method, target, opts);
    assert.equal(
      a.status,
      403,
      `${method} ${target} should be denied, got ${a.status} ${a.body.slice(0, 200)}`,
    );
    assert.equal(a.server, undefined, "portcullis's own answer");
    if (method !== "HEAD") assert.match(a.body, /portcullis denied/);
  }
}

const json = (s: string) => JSON.parse(s) as Record<string, unknown> & Record<string, never>;
const q = (value: unknown) => encodeURIComponent(JSON.stringify(value));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function docker(engine: PrivateDockerd, args: string[]): Promise<string> {
  const r = await runDocker(engine.host, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `docker ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

async function until<T>(what: string, get: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await get();
    if (v !== undefined) return v;
    await sleep(250);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describeWithDockerd("presets replay their clients' documented calls", { swarm: true }, async (engine) => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-presets-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const o = {
    webId: "",
    sickId: "",
    appId: "",
    imageId: "",
    nodeId: "",
    svcId: "",
    taskContainerId: "",
    bridgeId: "",
    swarmNetId: "",
  };
  const v = "/v1.41"; // what negotiating clients use against dockerd 20.10 (API 1.41)

  before(async () => {
    const img = engine.image;
    o.webId = await docker(engine, [
      "run",
      "-d",
      "--name",
      "web",
      "--label",
      "traefik.enable=true",
      "--label",
      "traefik.http.routers.web.rule=Host(`web.test`)",
      img,
      "sh",
      "-c",
      "echo hello from web; sleep 3600",
    ]);
    o.sickId = await docker(engine, [
      "run",
      "-d",
      "--name",
      "sick",
      "--label",
      "autoheal=true",
      "--health-cmd",
      "exit 1",
      "--health-interval",
      "1s",
      "--health-retries",
      "1",
      "--health-timeout",
      "1s",
      img,
      "sh",
      "-c",
      "trap 'exit 0' TERM; while :; do sleep 1; done",
    ]);
    o.appId = await docker(engine, [
      "run",
      "-d",
      "--name",
      "app",
      "--label",
      "com.centurylinklabs.watchtower.enable=true",
      img,
      "sh",
      "-c",
      "trap 'exit 0' TERM; while :; do sleep 1; done",
    ]);
    await docker(engine, ["tag", img, "old-image:1"]);
    o.imageId = await docker(engine, ["image", "inspect", "--format", "{{.Id}}", img]);
    o.nodeId = await docker(engine, ["info", "--format", "{{.Swarm.NodeID}}"]);
    o.bridgeId = await docker(engine, ["network", "create", "wt-net"]);
    o.swarmNetId = await docker(engine, ["network", "create", "--driver", "overlay", "--attachable", "edge"]);
    o.svcId = await docker(engine, [
      "service",
      "create",
      "--detach",
      "--name",
      "svc",
      "--network",
      "edge",
      "--label",
      "traefik.enable=true",
      img,
      "sh",
      "-c",
      "sleep 3600",
    ]);
    o.taskContainerId = await until("a running task", async () => {
      const r = await runDocker(engine.host, [
        "ps",
        "--filter",
        "label=com.docker.swarm.service.name=svc",
        "--filter",
        "status=running",
        "--format",
        "{{.ID}}",
      ]);
      return r.stdout.trim() || undefined;
    });
  });

  describe("Traefik", () => {
    it("docker provider (real-clients.md 2.1)", async () => {
      const p = await startPreset("traefik-docker", engine.socketPath);
      try {
        const answers = await replay(p, [
          ["HEAD", "/_ping"],
          ["GET", "/_ping"],
          ["GET", `${v}/version`],
          ["GET", `${v}/containers/json?all=1`],
          ["GET", `${v}/containers/${o.webId}/json`],
          ["GET", `${v}/events?filters=${q({ type: { container: true } })}`, { stream: true }],
        ]);
        const listed = JSON.parse(answers[3]?.body ?? "[]") as { Labels: Record<string, string> }[];
        assert.ok(
          listed.some((c) => c.Labels["traefik.enable"] === "true"),
          "the labelled container is listed",
        );
        await expectDenied(p, [
          ["GET", `${v}/containers/${o.webId}/logs?stdout=1`],
          ["GET", `${v}/containers/${o.webId}/archive?path=/etc`],
          ["POST", `${v}/containers/create`, { body: "{}" }],
          ["GET", `${v}/info`],
        ]);
      } finally {
        await p.stop();
      }
    });

    it("swarm provider (real-clients.md 2.2)", async () => {
      const p = await startPreset("traefik-swarm", engine.socketPath);
      try {
        const answers = await replay(p, [
          ["HEAD", "/_ping"],
          ["GET", `${v}/version`],
          ["GET", `${v}/services`],
          ["GET", `${v}/version`],
          ["GET", `${v}/networks?filters=${q({ scope: { swarm: true } })}`],
          [
            "GET",
            `${v}/tasks?filters=${q({ "desired-state": { running: true }, service: { [o.svcId]: true } })}`,
          ],
          ["GET", `${v}/nodes/${o.nodeId}`],
        ]);
        assert.match(answers[2]?.body ?? "", /"Name":"svc"/);
        assert.match(answers[4]?.body ?? "", /"Name":"edge"/);
        assert.match(answers[5]?.body ?? "", new RegExp(o.nodeId));
        await expectDenied(p, [
          ["GET", `${v}/containers/json`],
          ["GET", `${v}/swarm`],
          ["GET", `${v}/secrets`],
          ["POST", `${v}/services/${o.svcId}/update?version=1`, { body: "{}" }],
        ]);
      } finally {
        await p.stop();
      }
    });
  });

  it("Watchtower (real-clients.md 3.1 and 3.2): checks, pulls, recreates the stale container", async () => {
    const p = await startPreset("watchtower", engine.socketPath);
    try {
      const auth = Buffer.from(JSON.stringify({ username: "u", password: "p" })).toString("base64");
      await replay(p, [
        ["HEAD", "/_ping"],
        ["GET", `${v}/containers/${o.webId}/json`],
        ["GET", `${v}/containers/json?filters=${q({ status: { running: true } })}`],
        ["GET", `${v}/containers/${o.appId}/json`],
        ["GET", `${v}/images/${o.imageId}/json`],
        ["GET", `${v}/info`],
        // the registry is a closed loopback port: the daemon's answer is its pull error
        [
          "POST",
          `${v}/images/create?fromImage=${encodeURIComponent("127.0.0.1:1/library/nginx")}&tag=latest`,
          { headers: [["X-Registry-Auth", auth]], anyStatus: true },
        ],
        ["GET", `${v}/images/${engine.image}/json`],
        ["POST", `${v}/containers/${o.appId}/stop?signal=SIGTERM&t=10`],
        ["DELETE", `${v}/containers/${o.appId}?force=1`],
      ]);
      const [created] = await replay(p, [
        [
          "POST",
          `${v}/containers/create`,
          {
            body: JSON.stringify({
              Image: engine.image,
              Cmd: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
            }),
          },
        ],
      ]);
      const fresh = String(json(created?.body ?? "{}").Id);
      await replay(p, [
        ["POST", `${v}/containers/${fresh}/rename?name=app`],
        ["POST", `${v}/networks/${o.bridgeId}/connect`, { body: JSON.stringify({ Container: fresh }) }],
        ["POST", `${v}/containers/${fresh}/start`],
        [
          "POST",
          `${v}/containers/${fresh}/update`,
          { body: JSON.stringify({ RestartPolicy: { Name: "no" } }) },
        ],
        ["GET", `${v}/containers/json?all=1`],
        ["DELETE", `${v}/images/old-image:1?force=1`],
        // containrrr/watchtower: API 1.25, kill then disconnect/connect
        ["POST", `/v1.25/containers/${fresh}/kill?signal=SIGTERM`],
        ["GET", `/v1.25/containers/${fresh}/json`],
        ["POST", `/v1.25/networks/${o.bridgeId}/disconnect`, { body: JSON.stringify({ Container: fresh }) }],
      ]);
      await expectDenied(p, [
        ["POST", `${v}/containers/${fresh}/exec`, { body: JSON.stringify({ Cmd: ["id"] }) }],
        ["GET", `${v}/containers/${o.webId}/logs?stdout=1`],
        ["GET", `${v}/containers/${o.webId}/archive?path=/`],
        ["POST", `${v}/swarm/leave`],
      ]);
    } finally {
      await p.stop();
    }
  });

  it("Homepage (real-clients.md 4): unversioned, by container name, swarm servers too", async () => {
    const p = await startPreset("homepage", engine.socketPath);
    try {
      const answers = await replay(p, [
        ["GET", "/containers/json?all=true"],
        ["GET", "/containers/web/json"],
        ["GET", "/containers/web/stats?stream=false"],
        ["GET", "/services?all=true"],
        ["GET", "/services/svc"],
        ["GET", `/tasks?filters=${q({ service: ["svc"], "desired-state": ["running"] })}`],
        ["GET", `/containers/${o.taskContainerId}/json`],
        ["GET", `/containers/${o.taskContainerId}/stats?stream=false`],
      ]);
      assert.match(answers[1]?.body ?? "", /"Name":"\/web"/);
      assert.match(answers[2]?.body ?? "", /"cpu_stats"/);
      await expectDenied(p, [
        ["HEAD", "/_ping"],
        ["GET", "/containers/web/logs?stdout=1"],
        ["POST", "/containers/web/stop"],
        ["GET", "/images/json"],
      ]);
    } finally {
      await p.stop();
    }
  });

  it("Dozzle (real-clients.md 5): info, events, stats and log streams", async () => {
    const p = await startPreset("dozzle", engine.socketPath);
    try {
      const now = Date.now() / 1000;
      const answers = await replay(p, [
        ["HEAD", "/_ping"],
        ["GET", `${v}/info`],
        ["GET", `${v}/version`],
        ["GET", `${v}/containers/json?all=1`],
        ["GET", `${v}/events`, { stream: true }],
        ["GET", `${v}/containers/${o.webId}/json`],
        ["GET", `${v}/containers/${o.webId}/stats?stream=true`, { stream: true }],
        [
          "GET",
          `${v}/containers/${o.webId}/logs?since=${(now - 3600).toFixed(9)}&stderr=1&stdout=1&timestamps=1&until=${now.toFixed(9)}`,
        ],
        [
          "GET",
          `${v}/containers/${o.webId}/logs?follow=1&since=${(now - 3600).toFixed(9)}&stderr=1&stdout=1&tail=100&timestamps=1`,
          { stream: true },
        ],
      ]);
      assert.match(answers[7]?.body ?? "", /hello from web/);
      await expectDenied(p, [
        ["POST", `${v}/containers/${o.webId}/stop`],
        ["POST", `${v}/containers/${o.webId}/exec`, { body: JSON.stringify({ Cmd: ["sh"] }) }],
        ["GET", `${v}/containers/${o.webId}/archive?path=/`],
        ["DELETE", `${v}/containers/${o.webId}`],
      ]);
    } finally {
      await p.stop();
    }
  });

  it("Diun (real-clients.md 8): image names with slashes and colons in the path", async () => {
    const p = await startPreset("diun", engine.socketPath);
    try {
      await replay(p, [
        ["HEAD", "/_ping"],
        ["GET", `${v}/version`],
        ["GET", `${v}/containers/json?filters=${q({ status: { running: true } })}`],
        ["GET", `${v}/images/${engine.image}/json`],
        ["GET", `${v}/images/${o.imageId}/json`],
        ["GET", `${v}/services`],
      ]);
      const named = await call(p.port, "GET", `${v}/images/ghcr.io/org/app:1.2/json`);
      assert.equal(named.status, 404, "ImageInspect reaches the daemon, which has no such image");
      assert.match(named.server ?? "", /^Docker\//);
      await expectDenied(p, [
        ["GET", `${v}/containers/${o.webId}/json`],
        ["GET", `${v}/images/${engine.image}/get`],
        ["POST", `${v}/images/create?fromImage=busybox&tag=latest`],
      ]);
    } finally {
      await p.stop();
    }
  });

  it("Autoheal (real-clients.md 7): raw JSON in the query, a POST without body or length", async () => {
    const p = await startPreset("autoheal", engine.socketPath);
    try {
      const rawFilter = '/containers/json?filters={"health":["unhealthy"],"label":["autoheal=true"]}';
      const unhealthy = await until("the container to turn unhealthy", async () => {
        const [a] = await replay(p, [["GET", rawFilter]]);
        const list = JSON.parse(a?.body ?? "[]") as { Id: string }[];
        return list.some((c) => c.Id === o.sickId) ? o.sickId : undefined;
      });
      await replay(p, [["POST", `/containers/${unhealthy}/restart?t=10`]]);
      await expectDenied(p, [
        ["POST", `/containers/${o.sickId}/start`],
        ["POST", `/containers/${o.sickId}/kill`],
        ["GET", `/containers/${o.sickId}/json`],
        ["POST", "/containers/create", { body: "{}" }],
      ]);
    } finally {
      await p.stop();
    }
  });

  it("Portainer agent (real-clients.md 6): own SDK calls, Edge snapshot, some UI calls", async () => {
    const p = await startPreset("portainer-agent", engine.socketPath);
    try {
      await replay(p, [
        ["HEAD", "/_ping"],
        ["GET", `${v}/info`],
        ["GET", `${v}/nodes/${o.nodeId}`],
        ["GET", `${v}/containers/${o.webId.slice(0, 12)}/json`],
        ["GET", `${v}/networks/${o.bridgeId}`],
        ["GET", `${v}/services`],
        ["GET", `${v}/nodes`],
        ["GET", `${v}/containers/json?all=1`],
        ["GET", `${v}/images/json`],
        ["GET", `${v}/volumes`],
        ["GET", `${v}/networks`],
        ["GET", `${v}/version`],
        // relayed UI calls (unversioned)
        ["GET", "/tasks"],
        ["GET", "/swarm"],
        ["GET", "/containers/web/logs?stdout=1&tail=10"],
        ["POST", "/containers/web/exec", { body: JSON.stringify({ Cmd: ["true"], AttachStdout: true }) }],
      ]);
      await expectDenied(p, [
        ["POST", `${v}/auth`, { body: "{}" }],
        ["POST", "/session"],
        ["GET", `${v}/swarm/unlockkey`],
        ["GET", "/debug/pprof/"],
      ]);
    } finally {
      await p.stop();
    }
  });

  it("CI runner (docker CLI: build, run, exec, logs, cp, networks, volumes)", async () => {
    const p = await startPreset("ci-runner", engine.socketPath);
    const host = `tcp://127.0.0.1:${p.port}`;
    const ctx = join(dir, "build");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, "Dockerfile"), `FROM ${engine.image}\nCOPY hello.txt /hello.txt\n`);
    writeFileSync(join(ctx, "hello.txt"), "built by ci\n");
    const ci = async (args: string[]) => {
      const r = await runDocker(host, args, { timeoutMs: 60_000, env: { DOCKER_BUILDKIT: "0" } });
      assert.equal(r.code, 0, `docker ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    try {
      await ci(["version"]);
      await ci(["info"]);
      await ci(["build", "-q", "-t", "ci-built:1", ctx]);
      assert.match(await ci(["run", "--rm", "ci-built:1", "cat", "/hello.txt"]), /built by ci/);
      await ci(["network", "create", "ci-net"]);
      await ci(["volume", "create", "ci-vol"]);
      await ci([
        "run",
        "-d",
        "--name",
        "ci-job",
        "--network",
        "ci-net",
        "-v",
        "ci-vol:/data",
        "ci-built:1",
        "sleep",
        "300",
      ]);
      assert.match(await ci(["exec", "ci-job", "cat", "/hello.txt"]), /built by ci/);
      await ci(["logs", "ci-job"]);
      await ci(["cp", "ci-job:/hello.txt", join(dir, "copied.txt")]);
      await ci(["rm", "-f", "ci-job"]);
      await ci(["network", "rm", "ci-net"]);
      await ci(["volume", "rm", "ci-vol"]);
      await ci(["rmi", "ci-built:1"]);
      assert.deepEqual(
        p.logs.filter((l) => l.decision === "deny").map((l) => l.msg),
        [],
      );
      for (const [args, op] of [
        [["container", "prune", "-f"], "ContainerPrune"],
        [["swarm", "leave", "--force"], "SwarmLeave"],
        [["service", "ls"], "ServiceList"],
        [["plugin", "ls"], "PluginList"],
      ] as const) {
        const r = await runDocker(host, [...args]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, new RegExp(`portcullis denied ${op}`));
      }
    } finally {
      await p.stop();
    }
  });
});
