/**
 * Visibility and redaction against a private dockerd (single-node swarm) with the real docker CLI.
 *
 * Client "team" sees only objects labelled com.example.team=a or named shared-*; client "traefik"
 * sees everything but never container env values. Objects are made directly on the engine; the
 * clients go through the proxy, which talks to the daemon through a recording relay: no request
 * that changes state may name a hidden object there.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runDocker, startDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { type PolicyTestProxy, startPolicyProxy } from "../helpers/proxy.js";
import { recordingRelay } from "../helpers/recording-relay.js";

const TEAM = "com.example.team";

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request to the proxy's TCP listener (bounded by a timeout). */
function raw(port: number, method: string, path: string, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        agent: false,
        timeout: 10_000,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timed out: ${method} ${path}`)));
    req.on("error", reject);
    req.end(body);
  });
}

const lines = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();

describeWithDockerd(
  "visibility and redaction (docker CLI, private dockerd)",
  { swarm: true },
  async (engine) => {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-visibility-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const relay = await recordingRelay(join(dir, "relay.sock"), engine.socketPath);
    after(() => relay.close());
    const policyPath = join(dir, "policy.yaml");
    writeFileSync(
      policyPath,
      `version: 1
listeners:
  - { name: team, address: "tcp://127.0.0.1:0" }
  - { name: traefik, address: "tcp://127.0.0.1:0" }
profiles:
  team-a:
    rules:
      - allow: [SystemPing, SystemPingHead, SystemVersion, SystemEvents, SwarmInspect, SystemInfo, PluginInspect, NodeInspect, SecretInspect]
      - allow: [containers:*, ContainerLogs, ContainerPrune, exec:*, networks:*, volumes:*, VolumePrune]
      - allow: [images:read, ImageDelete, services:*, ServiceLogs, tasks:read, TaskLogs, configs:read]
    visibility:
      labels: { ${TEAM}: a }
      names: ["shared-*"]
    redact: [container.env, config.data, swarm.join_tokens]
  traefik:
    rules:
      - allow: [SystemPing, SystemPingHead, SystemVersion, SystemEvents, ContainerList, ContainerInspect]
      - allow: [services:read]
    redact: [container.env, container.mounts]
clients:
  - { name: team, profile: team-a, match: { listener: team } }
  - { name: traefik, profile: traefik, match: { listener: traefik } }
`,
    );
    const proxy: PolicyTestProxy = await startPolicyProxy(policyPath, join(dir, "relay.sock"));
    after(() => proxy.stop());
    const team = proxy.address("team");
    const teamPort = proxy.port("team");
    const traefik = proxy.address("traefik");

    const direct = async (args: string[]) => {
      const r = await runDocker(engine.host, args, { timeoutMs: 60_000 });
      assert.equal(r.code, 0, `docker ${args.join(" ")}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const sleeper = (name: string, team: string | null, extra: string[] = []) =>
      direct([
        "run",
        "-d",
        "--name",
        name,
        ...(team ? ["--label", `${TEAM}=${team}`] : []),
        "-e",
        "SECRET=hunter2",
        "-v",
        `${dir}:/host-dir:ro`,
        ...extra,
        engine.image,
        "sleep",
        "300",
      ]);

    const ids: Record<string, string> = {};
    before(async () => {
      ids["a-web"] = await sleeper("a-web", "a");
      ids["b-db"] = await sleeper("b-db", "b");
      ids["shared-cache"] = await sleeper("shared-cache", null);
      ids["b-net"] = await direct(["network", "create", "--label", `${TEAM}=b`, "b-net"]);
      ids["a-net"] = await direct(["network", "create", "--label", `${TEAM}=a`, "a-net"]);
      await direct(["network", "connect", "b-net", "b-db"]);
      await direct(["network", "connect", "a-net", "b-db"]);
      await direct(["network", "connect", "a-net", "a-web"]);
      await direct(["volume", "create", "--label", `${TEAM}=a`, "a-vol"]);
      await direct(["volume", "create", "--label", `${TEAM}=b`, "b-vol"]);
      for (const t of ["a", "b"])
        ids[`${t}-svc`] = await direct([
          "service",
          "create",
          "--detach",
          "--quiet",
          "--name",
          `${t}-svc`,
          "--label",
          `${TEAM}=${t}`,
          "--env",
          "SVC_SECRET=swordfish",
          engine.image,
          "sleep",
          "300",
        ]);
      ids["b-img"] = await direct(["commit", "b-db", "b-img:1"]);
      const conf = await runDocker(engine.host, ["config", "create", "--label", `${TEAM}=a`, "a-conf", "-"], {
        input: "config-data-secret",
      });
      assert.equal(conf.code, 0, conf.stderr);
    });
    after(async () => {
      await runDocker(engine.host, ["service", "rm", "a-svc", "b-svc"]);
      await runDocker(engine.host, ["rm", "-f", "a-web", "b-db", "shared-cache", "a-made", "a-ev", "b-ev"]);
    });

    /** Requests that changed state and reached the daemon (the relay saw them). */
    const writesSeen = () => relay.requestLines().filter((l) => !/^(GET|HEAD) /.test(l));
    const hiddenNames = ["b-db", "b-net", "b-vol", "b-svc", "b-img"];
    const hiddenRefs = () => [
      ...hiddenNames,
      ...["b-db", "b-net", "b-svc", "b-img"].map((k) => ids[k] as string),
    ];

    describe("lists", () => {
      it("docker ps -a shows visible containers only", async () => {
        const r = await runDocker(team, ["ps", "-a", "--format", "{{.Names}}"]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(lines(r.stdout), ["a-web", "shared-cache"]);
        const all = await runDocker(traefik, ["ps", "-a", "--format", "{{.Names}}"]);
        const own = lines(all.stdout).filter((n) => !n.includes("-svc."));
        assert.deepEqual(own, ["a-web", "b-db", "shared-cache"], "traefik has no visibility: it sees all");
      });

      it("networks, volumes, services, tasks and images are filtered", async () => {
        const nets = await runDocker(team, ["network", "ls", "--format", "{{.Name}}"]);
        assert.equal(nets.code, 0, nets.stderr);
        assert.deepEqual(lines(nets.stdout), ["a-net"]);
        const vols = await runDocker(team, ["volume", "ls", "--format", "{{.Name}}"]);
        assert.equal(vols.code, 0, vols.stderr);
        assert.deepEqual(lines(vols.stdout), ["a-vol"]);
        const svcs = await runDocker(team, ["service", "ls", "--format", "{{.Name}}"]);
        assert.equal(svcs.code, 0, svcs.stderr);
        assert.deepEqual(lines(svcs.stdout), ["a-svc"]);
        const tasks = JSON.parse((await raw(teamPort, "GET", "/v1.41/tasks")).body) as {
          ServiceID: string;
        }[];
        assert.ok(tasks.length > 0);
        assert.deepEqual([...new Set(tasks.map((t) => t.ServiceID))], [ids["a-svc"]]);
        const imgs = await runDocker(team, ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert.equal(imgs.code, 0, imgs.stderr);
        assert.deepEqual(lines(imgs.stdout), [], "busybox has no matching tag, b-img:1 is team b");
      });

      it("a visible network's inspect lists only visible containers", async () => {
        const r = await runDocker(team, [
          "network",
          "inspect",
          "a-net",
          "--format",
          "{{range .Containers}}{{.Name}} {{end}}",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.trim().split(" ").sort(), ["a-web"]);
      });
    });

    describe("single objects: hidden is 404, exactly like a missing one", () => {
      it("docker inspect, logs, exec, stop, rm of a hidden container", async () => {
        for (const args of [
          ["container", "inspect", "b-db"],
          ["logs", "b-db"],
          ["exec", "b-db", "true"],
          ["stop", "-t", "0", "b-db"],
          ["rm", "b-db"],
          ["rename", "b-db", "mine-now"],
          ["top", "b-db"],
          ["container", "inspect", ids["b-db"] as string],
        ]) {
          const r = await runDocker(team, args);
          assert.notEqual(r.code, 0, `docker ${args.join(" ")} must fail`);
          assert.match(r.stderr, /No such container: b-db|No such container: [0-9a-f]{64}/, args.join(" "));
        }
        // `docker rm -f` says nothing about missing containers (CLI behaviour): it must not remove it either.
        assert.equal((await runDocker(team, ["rm", "-f", "b-db"])).code, 0);
        const any = await runDocker(team, ["inspect", "b-db"]);
        assert.match(any.stderr, /No such object: b-db/);
        assert.equal(await direct(["inspect", "--format", "{{.State.Running}}", "b-db"]), "true");
      });

      it("the 404 body and headers are the daemon's for a missing container", async () => {
        const hidden = await raw(teamPort, "GET", "/v1.41/containers/b-db/json");
        const missing = await raw(teamPort, "GET", "/v1.41/containers/no-such-thing/json");
        assert.equal(hidden.status, 404);
        assert.equal(missing.status, 404);
        assert.equal(hidden.body, '{"message":"No such container: b-db"}\n');
        assert.equal(missing.body, '{"message":"No such container: no-such-thing"}\n');
        const names = (h: http.IncomingHttpHeaders) =>
          Object.keys(h)
            .filter((k) => k !== "date")
            .sort();
        assert.deepEqual(names(hidden.headers), names(missing.headers));
        for (const [path, missingPath] of [
          ["/v1.41/networks/b-net", "/v1.41/networks/no-such-net"],
          ["/v1.41/volumes/b-vol", "/v1.41/volumes/no-such-vol"],
          ["/v1.41/services/b-svc", "/v1.41/services/no-such-svc"],
          ["/v1.41/images/b-img:1/json", "/v1.41/images/no-such-img:1/json"],
        ] as const) {
          const h = await raw(teamPort, "GET", path);
          const m = await raw(teamPort, "GET", missingPath);
          assert.equal(h.status, 404, path);
          const hiddenName = path.split("/")[3] as string;
          const missingName = missingPath.split("/")[3] as string;
          assert.equal(h.body, m.body.split(missingName).join(hiddenName), path);
        }
      });

      it("attach to a hidden container is 404 on both hijack paths; logs of a visible one work", async () => {
        const plain = await raw(teamPort, "POST", "/v1.41/containers/b-db/attach?stream=1&stdout=1");
        assert.equal(plain.status, 404);
        assert.equal(plain.body, '{"message":"No such container: b-db"}\n');
        const upgraded = await new Promise<RawAnswer>((resolve, reject) => {
          const req = http.request({
            host: "127.0.0.1",
            port: teamPort,
            method: "POST",
            path: "/v1.41/containers/b-db/attach?stream=1&stdout=1",
            headers: { Connection: "Upgrade", Upgrade: "tcp" },
            agent: false,
            timeout: 10_000,
          });
          req.on("upgrade", () => reject(new Error("the hidden container's attach was upgraded")));
          req.on("response", (res) => {
            let text = "";
            res.on("data", (c) => {
              text += c;
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
          });
          req.on("timeout", () => req.destroy(new Error("timed out")));
          req.on("error", reject);
          req.end();
        });
        assert.equal(upgraded.status, 404);
        assert.match(upgraded.body, /No such container: b-db/);
        const logs = await runDocker(team, ["logs", "a-web"]);
        assert.equal(logs.code, 0, logs.stderr);
      });

      it("exec into a hidden container is 404; into a visible one it works", async () => {
        const ok = await runDocker(team, ["exec", "a-web", "echo", "inside"]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(ok.stdout.trim(), "inside");
        // An exec instance of the hidden container, made directly: its id does not help.
        const exec = await new Promise<string>((resolve, reject) => {
          const req = http.request(
            {
              socketPath: engine.socketPath,
              method: "POST",
              path: "/v1.41/containers/b-db/exec",
              headers: { "Content-Type": "application/json" },
            },
            (res) => {
              let t = "";
              res.on("data", (c) => {
                t += c;
              });
              res.on("end", () => resolve((JSON.parse(t) as { Id: string }).Id));
            },
          );
          req.on("error", reject);
          req.end(JSON.stringify({ Cmd: ["true"] }));
        });
        for (const [method, path, body] of [
          ["GET", `/v1.41/exec/${exec}/json`, undefined],
          ["POST", `/v1.41/exec/${exec}/start`, '{"Detach":true}'],
          ["POST", `/v1.41/exec/${exec}/resize?h=10&w=10`, undefined],
        ] as const) {
          const r = await raw(teamPort, method, path, body);
          assert.equal(r.status, 404, `${method} ${path}`);
          assert.equal(r.body, `{"message":"No such exec instance: ${exec}"}\n`);
        }
      });

      it("networks, volumes, services, images: hidden ones cannot be touched", async () => {
        for (const [args, pattern] of [
          [["network", "inspect", "b-net"], /network b-net not found|No such network/],
          [["network", "rm", "b-net"], /network b-net not found|No such network/],
          [["network", "connect", "a-net", "b-db"], /No such container: b-db/],
          [["network", "disconnect", "b-net", "a-web"], /network b-net not found/],
          [["volume", "inspect", "b-vol"], /no such volume/],
          [["volume", "rm", "b-vol"], /no such volume/],
          [["service", "inspect", "b-svc"], /service b-svc not found|no such service/],
          [["service", "rm", "b-svc"], /service b-svc not found/],
          [["service", "logs", "b-svc"], /service b-svc not found|no such/],
          [["service", "scale", "b-svc=3"], /service b-svc not found|no such/],
          [["image", "inspect", "b-img:1"], /[Nn]o such image/],
          [["image", "rm", "b-img:1"], /No such image/],
          [["service", "ps", "b-svc"], /service b-svc not found|no such/],
        ] as const) {
          const r = await runDocker(team, [...args]);
          assert.notEqual(r.code, 0, `docker ${args.join(" ")} must fail`);
          assert.match(r.stderr, pattern, `docker ${args.join(" ")}`);
        }
      });

      it("tasks of a hidden service are 404, by inspect and by logs", async () => {
        const hidden = (await direct(["service", "ps", "-q", "b-svc"])).split("\n")[0] as string;
        const visible = (await direct(["service", "ps", "-q", "a-svc"])).split("\n")[0] as string;
        assert.equal((await raw(teamPort, "GET", `/v1.41/tasks/${visible}`)).status, 200);
        for (const path of [`/v1.41/tasks/${hidden}`, `/v1.41/tasks/${hidden}/logs?stdout=1`]) {
          const r = await raw(teamPort, "GET", path);
          assert.equal(r.status, 404, path);
          assert.equal(r.body, `{"message":"task ${hidden} not found"}\n`);
        }
      });

      it("a visible container joins and leaves a visible network through the proxy", async () => {
        const join = await runDocker(team, ["network", "connect", "a-net", "shared-cache"]);
        assert.equal(join.code, 0, join.stderr);
        const leave = await runDocker(team, ["network", "disconnect", "a-net", "shared-cache"]);
        assert.equal(leave.code, 0, leave.stderr);
      });

      it("prunes are refused under visibility", async () => {
        const r = await runDocker(team, ["container", "prune", "-f"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /portcullis denied ContainerPrune: this client sees only some objects/);
      });

      it("a visible container can be run, stopped and removed through the proxy", async () => {
        const run = await runDocker(team, [
          "run",
          "-d",
          "--name",
          "a-made",
          "--label",
          `${TEAM}=a`,
          engine.image,
          "sleep",
          "300",
        ]);
        assert.equal(run.code, 0, run.stderr);
        const stop = await runDocker(team, ["rm", "-f", "a-made"]);
        assert.equal(stop.code, 0, stop.stderr);
      });
    });

    describe("events", () => {
      it("docker events shows only the visible container's, volume's and network's events", async () => {
        const events = startDocker(team, [
          "events",
          "--format",
          '{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "name"}}',
        ]);
        after(() => events.kill());
        // Let the stream open (headers first), then make noise: hidden objects first, visible last.
        await new Promise((r) => setTimeout(r, 500));
        await sleeper("b-ev", "b");
        await sleeper("a-ev", "a");
        await direct(["stop", "-t", "0", "b-ev"]);
        await direct(["stop", "-t", "0", "a-ev"]);
        await direct(["volume", "create", "--label", `${TEAM}=b`, "b-vol2"]);
        await direct(["volume", "create", "--label", `${TEAM}=a`, "a-vol2"]);
        await direct(["volume", "rm", "b-vol2"]);
        await direct(["volume", "rm", "a-vol2"]);
        await direct(["network", "create", "--label", `${TEAM}=b`, "b-net2"]);
        await direct(["network", "rm", "b-net2"]);
        await direct(["network", "create", "--label", `${TEAM}=a`, "a-net2"]);
        await direct(["network", "rm", "a-net2"]);
        const out = await events.waitForOutput(/network destroy \S+ a-net2/, 20_000);
        assert.match(out, /container start \S+ a-ev/);
        assert.match(out, /container die \S+ a-ev/);
        assert.match(out, /volume create a-vol2/);
        assert.match(
          out,
          /volume destroy a-vol2/,
          "seen visible earlier in the stream: its destroy is shown",
        );
        assert.match(out, /network create \S+ a-net2/);
        for (const hidden of ["b-ev", "b-vol2", "b-net2", "b-db", "b-svc"])
          assert.doesNotMatch(out, new RegExp(hidden));
        await events.kill();
      });
    });

    describe("redaction", () => {
      it("docker inspect shows no env values; labels stay", async () => {
        for (const host of [team, traefik]) {
          const r = await runDocker(host, [
            "inspect",
            "--format",
            "{{json .Config.Env}} {{json .Config.Labels}}",
            "a-web",
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.doesNotMatch(r.stdout, /hunter2/);
          assert.match(r.stdout, /^null /);
          assert.match(r.stdout, /"com\.example\.team":"a"/);
        }
        const plain = await direct(["inspect", "--format", "{{json .Config.Env}}", "a-web"]);
        assert.match(plain, /SECRET=hunter2/);
      });

      it("container.mounts removes host paths from inspect and list", async () => {
        const r = await runDocker(traefik, [
          "inspect",
          "--format",
          "{{json .Mounts}} {{json .HostConfig.Binds}}",
          "b-db",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!r.stdout.includes(dir), r.stdout);
        assert.match(r.stdout, /"Destination":"\/host-dir"/);
        const list = await raw(proxy.port("traefik"), "GET", "/v1.41/containers/json?all=1");
        assert.ok(!list.body.includes(dir));
        assert.equal(Number(list.headers["content-length"]), Buffer.byteLength(list.body));
        // team-a does not redact mounts
        const team = await raw(teamPort, "GET", "/v1.41/containers/a-web/json");
        assert.ok(team.body.includes(dir));
      });

      it("service env, config data and swarm join tokens are removed", async () => {
        const svc = await runDocker(traefik, [
          "service",
          "inspect",
          "a-svc",
          "--format",
          "{{json .Spec.TaskTemplate.ContainerSpec}}",
        ]);
        assert.equal(svc.code, 0, svc.stderr);
        assert.doesNotMatch(svc.stdout, /swordfish/);
        assert.match(svc.stdout, /"Image"/);
        const swarm = JSON.parse((await raw(teamPort, "GET", "/v1.41/swarm")).body) as Record<
          string,
          unknown
        >;
        assert.equal(swarm.JoinTokens, undefined);
        assert.ok(swarm.ID);
        const configs = JSON.parse((await raw(teamPort, "GET", "/v1.41/configs")).body) as { Spec: object }[];
        assert.equal(configs.length, 1);
        for (const c of configs) assert.ok(!("Data" in c.Spec));
      });
    });

    describe("the invariant", () => {
      it("no request that changes state and names a hidden object reached the daemon", () => {
        const writes = writesSeen();
        assert.ok(writes.length > 0, "the relay saw the visible writes");
        for (const line of writes) {
          for (const ref of hiddenRefs()) assert.ok(!line.includes(ref), `reached the daemon: ${line}`);
          assert.doesNotMatch(line, /prune/, line);
        }
      });

      it("the decision log records the 404s", () => {
        const notFound = proxy.logs.filter(
          (r) => r.client === "team" && r.operation === "ContainerStop" && r.status === 404,
        );
        assert.equal(notFound.length, 1);
      });
    });
  },
);
