/**
 * The deployment examples besides the swarm stack (test/e2e/swarm-deploy.test.ts runs that one):
 *
 *  - static: docs/deploy.md shows every deploy/ file verbatim; deploy/stack.yaml and
 *    deploy/compose.yaml wire proxy and Traefik the same way (read-only socket, non-root, read-only
 *    root, internal network, the toggles each Traefik provider needs and nothing more); the
 *    Dockerfile's runtime settings equal the ones scripts/build-test-image.sh imports with.
 *  - systemd: deploy/portcullis.service's ExecStart and Environment=, run as a plain process against
 *    a private dockerd (test substitutions: the installed bin -> this checkout's dist entry point,
 *    SOCKET_PATH -> the private daemon, PORTCULLIS_LISTEN -> a free loopback port).
 *  - docker run: deploy/docker-run.sh with the test image on a private engine in its own network
 *    namespace (substitution: the host's /var/run/docker.sock -> that engine's socket), then
 *    Traefik's docker-provider calls and the docker CLI against 127.0.0.1:2375 inside that namespace.
 *  - compose: there is no `docker compose` here, so deploy/compose.yaml is carried out with plain
 *    docker commands (networks, aliases, group_add, read_only, env, volumes, command), with a probe
 *    client in Traefik's place that takes the endpoint from Traefik's own arguments.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { dockerEnv, runDocker } from "../helpers/docker-cli.js";
import { dockerdSkipReason, type PrivateDockerd, startDockerd } from "../helpers/dockerd.js";
import {
  type SwarmCluster,
  type SwarmNode,
  startSwarmCluster,
  swarmClusterSkipReason,
} from "../helpers/swarm-cluster.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const IMAGE = "portcullis:test";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/* ------------------------------------------------------------------ static */

type Svc = Record<string, unknown> & {
  image?: string;
  environment?: Record<string, string>;
  volumes?: unknown[];
  networks?: string[];
  command?: string[];
  deploy?: { mode?: string; placement?: { constraints?: string[] } };
};

/** Expectations shared by the stack and the compose file. */
function checkWiring(
  file: string,
  doc: { services: Record<string, Svc>; networks: Record<string, Record<string, unknown>> },
  toggles: string[],
  provider: "swarm" | "docker",
): void {
  const proxy = doc.services["socket-proxy"];
  const traefik = doc.services.traefik;
  assert.ok(proxy && traefik, `${file}: services socket-proxy and traefik`);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: compose interpolation syntax, not a template
  assert.equal(proxy.image, "${PORTCULLIS_IMAGE:-portcullis:latest}", `${file}: image parametrised`);
  const env = proxy.environment ?? {};
  const enabled = Object.entries(env)
    .filter(([k, v]) => k !== "LOG_LEVEL" && /^(1|true|yes|on)$/i.test(v))
    .map(([k]) => k)
    .sort();
  assert.deepEqual(
    enabled,
    [...toggles].sort(),
    `${file}: exactly the toggles Traefik's ${provider} provider needs`,
  );
  assert.equal(env.POST, undefined, `${file}: no POST`);
  assert.equal(proxy.read_only, true, `${file}: read-only root`);
  // the socket, read-only, at the default SOCKET_PATH
  const vols = JSON.stringify(proxy.volumes);
  assert.match(vols, /\/var\/run\/docker\.sock/);
  assert.ok(
    (proxy.volumes ?? []).some(
      (v) =>
        (typeof v === "string" && /:\/var\/run\/docker\.sock:ro$/.test(v)) ||
        (typeof v === "object" &&
          v !== null &&
          (v as Record<string, unknown>).target === "/var/run/docker.sock" &&
          (v as Record<string, unknown>).read_only === true),
    ),
    `${file}: socket mounted read-only at /var/run/docker.sock: ${vols}`,
  );
  // non-root with the socket's group
  const groupAdd = proxy.group_add as string[] | undefined;
  assert.ok(
    (typeof proxy.user === "string" && /^10001:\$\{DOCKER_GID:\?/.test(proxy.user)) ||
      (groupAdd?.length === 1 && /^\$\{DOCKER_GID:\?/.test(groupAdd[0] ?? "")),
    `${file}: non-root with DOCKER_GID`,
  );
  // Traefik talks to the proxy by service name on a network only they share
  const endpoint = (traefik.command ?? []).find((a) => a.startsWith(`--providers.${provider}.endpoint=`));
  assert.equal(endpoint, `--providers.${provider}.endpoint=tcp://socket-proxy:2375`);
  assert.ok(
    proxy.networks?.includes("socket-proxy") && traefik.networks?.includes("socket-proxy"),
    `${file}: shared network`,
  );
  assert.equal(doc.networks["socket-proxy"]?.internal, true, `${file}: the proxy's network is internal`);
  assert.ok(!("ports" in proxy), `${file}: the proxy publishes no port`);
}

describe("deployment examples: static checks", () => {
  const docs = read("docs/deploy.md");

  for (const f of [
    "deploy/stack.yaml",
    "deploy/compose.yaml",
    "deploy/docker-run.sh",
    "deploy/portcullis.service",
  ]) {
    it(`docs/deploy.md shows ${f} verbatim`, () => {
      assert.ok(docs.includes(read(f).trimEnd()), `${f} differs from its copy in docs/deploy.md`);
    });
  }

  it("deploy/stack.yaml: proxy on the managers with the swarm provider's toggles, Traefik on the workers", () => {
    const doc = parseYaml(read("deploy/stack.yaml"));
    checkWiring("stack.yaml", doc, ["SERVICES", "TASKS", "NETWORKS", "NODES"], "swarm");
    const proxy = doc.services["socket-proxy"] as Svc;
    assert.equal(proxy.deploy?.mode, "global");
    assert.deepEqual(proxy.deploy?.placement?.constraints, ["node.role == manager"]);
    assert.deepEqual((doc.services.traefik as Svc).deploy?.placement?.constraints, ["node.role == worker"]);
    assert.equal(doc.networks["socket-proxy"].driver, "overlay");
    // production keeps the default VIP endpoint mode (only the test switches to dnsrr)
    assert.equal(JSON.stringify(doc).includes("dnsrr"), false);
  });

  it("deploy/compose.yaml: the docker provider's toggle, same wiring", () => {
    const doc = parseYaml(read("deploy/compose.yaml"));
    checkWiring("compose.yaml", doc, ["CONTAINERS"], "docker");
  });

  it("the Dockerfile's runtime settings equal the test image's (scripts/build-test-image.sh)", () => {
    const dockerfile = read("Dockerfile").replace(/\\\n\s*/g, "");
    const stages = dockerfile.split(/^FROM /m);
    const runtime = stages.at(-1) ?? "";
    const fromDockerfile = new Map<string, string>();
    for (const line of runtime.split("\n")) {
      const m = /^(USER|EXPOSE|HEALTHCHECK|ENTRYPOINT|CMD|WORKDIR|ENV)\s+(.*)$/.exec(line.trim());
      if (m?.[1] && m[2]) fromDockerfile.set(m[1], m[2].replace(/\s+/g, " "));
    }
    const script = read("scripts/build-test-image.sh");
    const uid = /APP_UID=(\d+)/.exec(script)?.[1] ?? "";
    const gid = /APP_GID=(\d+)/.exec(script)?.[1] ?? "";
    const fromScript = new Map<string, string>();
    for (const m of script.matchAll(/--change ['"]([A-Z]+) (.*?)['"] \\/g)) {
      if (m[1] && m[2]) fromScript.set(m[1], m[2].replace("$APP_UID", uid).replace("$APP_GID", gid));
    }
    for (const k of ["USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "WORKDIR", "ENV"]) {
      assert.equal(
        fromScript.get(k),
        fromDockerfile.get(k),
        `${k} differs between Dockerfile and build-test-image.sh`,
      );
    }
    assert.equal(fromDockerfile.get("USER"), "10001:10001");
    assert.match(
      fromDockerfile.get("HEALTHCHECK") ?? "",
      /CMD \["node", "\/app\/dist\/src\/cli\/main\.js", "healthcheck"\]$/,
    );
  });
});

/* ------------------------------------------------------------------ systemd */

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function unitDirectives(text: string, key: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: ["ignore", "pipe", "pipe"],
      ...(opts.env ? { env: opts.env } : {}),
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: null, out, err: err + e.message });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

const systemdSkip = dockerdSkipReason({ image: false });

describe("deploy/portcullis.service: ExecStart and Environment= as a plain process", {
  skip: systemdSkip ?? false,
}, () => {
  let engine: PrivateDockerd | undefined;
  let proc: ReturnType<typeof spawn> | undefined;
  let listen = "";
  let env: NodeJS.ProcessEnv = {};
  const unit = read("deploy/portcullis.service");

  before(
    async () => {
      engine = await startDockerd({ image: false });
      const port = await freePort();
      listen = `tcp://127.0.0.1:${port}`;
      env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
      for (const e of unitDirectives(unit, "Environment")) {
        const i = e.indexOf("=");
        env[e.slice(0, i)] = e.slice(i + 1);
      }
      assert.equal(env.SOCKET_PATH, "/var/run/docker.sock");
      assert.equal(env.PORTCULLIS_LISTEN, "tcp://127.0.0.1:2375");
      env.SOCKET_PATH = engine.socketPath;
      env.PORTCULLIS_LISTEN = listen;
    },
    { timeout: 90_000 },
  );
  after(
    async () => {
      if (proc && proc.exitCode === null) proc.kill("SIGKILL");
      await engine?.stop();
    },
    { timeout: 60_000 },
  );

  it("systemd-analyze verify accepts the unit", {
    skip: existsSync("/usr/bin/systemd-analyze") ? false : "no systemd-analyze",
  }, async () => {
    const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
    const dir = await mkdtemp("/tmp/portcullis-unit-");
    try {
      // verify wants ExecStart's binary to exist: point it at this checkout
      await writeFile(
        join(dir, "portcullis.service"),
        unit.replace(
          "ExecStart=/usr/local/bin/portcullis",
          `ExecStart=${process.execPath} ${join(ROOT, "dist/src/cli/main.js")}`,
        ),
      );
      const r = await run("systemd-analyze", ["verify", join(dir, "portcullis.service")], {
        timeoutMs: 30_000,
      });
      assert.equal(r.code, 0, r.out + r.err);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("serves the unit's policy (CONTAINERS=1) on the unit's listener", { timeout: 60_000 }, async () => {
    assert.ok(engine);
    const exec = unitDirectives(unit, "ExecStart");
    assert.equal(exec.length, 1);
    const argv = (exec[0] ?? "").split(/\s+/);
    assert.equal(argv[0], "/usr/local/bin/portcullis", "installed by npm install -g");
    // the installed bin is this checkout's dist/src/cli/main.js
    proc = spawn(process.execPath, [join(ROOT, "dist/src/cli/main.js"), ...argv.slice(1)], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    proc.stdout?.on("data", (b: Buffer) => {
      log += b.toString();
    });
    proc.stderr?.on("data", (b: Buffer) => {
      log += b.toString();
    });
    const deadline = Date.now() + 15_000;
    let health = { code: null as number | null, out: "", err: "" };
    while (Date.now() < deadline) {
      health = await run(process.execPath, [join(ROOT, "dist/src/cli/main.js"), "healthcheck"], {
        env,
        timeoutMs: 10_000,
      });
      if (health.code === 0) break;
      await sleep(200);
    }
    assert.equal(health.code, 0, `healthcheck: ${health.out}${health.err}\nlog: ${log}`);
    const ps = await runDocker(listen, ["ps", "-a"]);
    assert.equal(ps.code, 0, ps.stderr);
    const denied = await runDocker(listen, ["volume", "ls"]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Error response from daemon: portcullis denied/);
    const create = await runDocker(listen, ["create", "busybox"]);
    assert.match(create.stderr, /portcullis denied/);
  });

  it("stops cleanly on SIGTERM (systemctl stop)", { timeout: 30_000 }, async () => {
    assert.ok(proc);
    const exited = new Promise<number | null>((r) => proc?.once("exit", (code) => r(code)));
    proc.kill("SIGTERM");
    const code = await Promise.race([exited, sleep(15_000).then(() => "timeout" as const)]);
    assert.equal(code, 0);
  });
});

/* ------------------------------------------------------------------ docker run + compose on an engine in its own netns */

/** A client making Traefik's docker-provider calls; endpoint from its `--providers.docker.endpoint=` argument. */
const DOCKER_PROVIDER_CLIENT = `
const http = require("node:http");
const arg = process.argv.find((a) => a.startsWith("--providers.docker.endpoint="));
const endpoint = new URL(arg.slice(arg.indexOf("=") + 1));
function call(method, path, body, headersOnly) {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = data ? { "content-type": "application/json", "content-length": String(data.length) } : {};
    const req = http.request({ host: endpoint.hostname, port: Number(endpoint.port), method, path, agent: false, timeout: 3000, headers }, (res) => {
      if (headersOnly) { resolve({ status: res.statusCode }); req.destroy(); return; }
      let b = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (b += c));
      res.on("end", () => resolve({ status: res.statusCode, body: b }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, error: e.code || e.message }));
    req.end(data);
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const out = {};
  let p = {};
  for (let i = 0; i < 60; i++) { p = await call("HEAD", "/_ping"); if (p.status === 200) break; await sleep(500); }
  out.ping = p.status;
  const V = "/v1.41";
  out.version = (await call("GET", V + "/version")).status;
  const list = await call("GET", V + "/containers/json?all=1");
  out.list = list.status;
  let cs = [];
  try { cs = JSON.parse(list.body); } catch {}
  out.names = cs.map((c) => (c.Names || [])[0]);
  out.inspect = [];
  for (const c of cs.slice(0, 5)) out.inspect.push((await call("GET", V + "/containers/" + c.Id + "/json")).status);
  out.events = (await call("GET", V + "/events?filters=" + encodeURIComponent(JSON.stringify({ type: { container: true } })), undefined, true)).status;
  const id = cs[0] ? cs[0].Id : "none";
  const denied = {};
  const d = async (k, m, path, body) => { const r = await call(m, V + path, body); denied[k] = r.status + " " + (r.body || r.error || "").slice(0, 200); };
  await d("services", "GET", "/services");
  await d("create", "POST", "/containers/create", { Image: "portcullis:test" });
  await d("exec", "POST", "/containers/" + id + "/exec", { Cmd: ["id"] });
  await d("kill", "POST", "/containers/" + id + "/kill");
  await d("images", "GET", "/images/json");
  out.denied = denied;
  console.log(JSON.stringify(out));
})();
`;

interface ProviderResult {
  ping: number;
  version: number;
  list: number;
  names: string[];
  inspect: number[];
  events: number;
  denied: Record<string, string>;
}

function checkProviderResult(r: ProviderResult, expectNames: string[]): void {
  assert.equal(r.ping, 200, "HEAD /_ping");
  assert.equal(r.version, 200, "GET /version");
  assert.equal(r.list, 200, "GET /containers/json?all=1");
  for (const n of expectNames) assert.ok(r.names.includes(n), `${n} in ${r.names}`);
  assert.ok(r.inspect.length > 0 && r.inspect.every((s) => s === 200), `inspects: ${r.inspect}`);
  assert.equal(r.events, 200, "GET /events (streams)");
  for (const [k, v] of Object.entries(r.denied)) assert.match(v, /^403 .*portcullis denied/, `${k}: ${v}`);
}

/** Minimal ${VAR}, ${VAR:-default}, ${VAR:?error} interpolation, as compose does it. */
function interpolate(s: string, vars: Record<string, string>): string {
  return s.replace(
    /\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g,
    (_, name: string, op?: string, arg?: string) => {
      const v = vars[name];
      if (v !== undefined && v !== "") return v;
      if (op === "-") return arg ?? "";
      if (op === "?") throw new Error(`required variable ${name}: ${arg}`);
      return "";
    },
  );
}

const nsSkip = swarmClusterSkipReason();

describe("deploy/docker-run.sh and deploy/compose.yaml on a private engine", {
  skip: nsSkip ?? false,
}, () => {
  let cluster: SwarmCluster | undefined;
  let node: SwarmNode | undefined;

  /** Runs a command inside the engine's network namespace (where its 127.0.0.1 is). */
  const inNetns = (cmd: string, args: string[], timeoutMs = 30_000) =>
    run("nsenter", [`--net=/var/run/netns/${node?.netns}`, "--", cmd, ...args], {
      env: dockerEnv(),
      timeoutMs,
    });

  before(
    async () => {
      cluster = await startSwarmCluster({ managers: 1, workers: 0, swarm: false });
      node = cluster.manager;
      const build = await run(
        "sh",
        [join(ROOT, "scripts/build-test-image.sh"), "-H", node.host, "-t", IMAGE],
        { timeoutMs: 180_000 },
      );
      assert.equal(build.code, 0, `build-test-image.sh failed:\n${build.out}${build.err}`);
    },
    { timeout: 240_000 },
  );
  after(() => cluster?.stop(), { timeout: 120_000 });

  it("docker run (deploy/docker-run.sh): healthy, non-root, read-only; serves CONTAINERS on 127.0.0.1:2375", {
    timeout: 120_000,
  }, async () => {
    assert.ok(node);
    const script = read("deploy/docker-run.sh");
    // the only substitution: the host's socket is this engine's
    const local = script
      .replace("stat -c %g /var/run/docker.sock", `stat -c %g ${node.socketPath}`)
      .replace("-v /var/run/docker.sock:", `-v ${node.socketPath}:`);
    assert.notEqual(local, script);
    const r = await run("sh", ["-c", local], {
      env: dockerEnv({ DOCKER_HOST: node.host, PORTCULLIS_IMAGE: IMAGE }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.err);
    const id = r.out.trim();
    let state = "";
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline) {
      state = (
        await runDocker(node.host, [
          "inspect",
          "--format",
          "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
          id,
        ])
      ).stdout.trim();
      if (state === "running healthy" || !state.startsWith("running")) break;
      await sleep(500);
    }
    assert.equal(state, "running healthy", (await runDocker(node.host, ["logs", id])).stderr);
    const insp = await runDocker(node.host, [
      "inspect",
      "--format",
      "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.GroupAdd}}",
      id,
    ]);
    assert.equal(insp.stdout.trim(), `10001:10001 true ["${statSync(node.socketPath).gid}"]`);

    const client = await inNetns(process.execPath, [
      "-e",
      DOCKER_PROVIDER_CLIENT,
      "--",
      "--providers.docker.endpoint=tcp://127.0.0.1:2375",
    ]);
    assert.equal(client.code, 0, client.err);
    checkProviderResult(JSON.parse(client.out) as ProviderResult, ["/socket-proxy"]);

    // the docker CLI through it
    const ps = await inNetns("docker", ["-H", "tcp://127.0.0.1:2375", "ps", "--format", "{{.Names}}"]);
    assert.equal(ps.code, 0, ps.err);
    assert.equal(ps.out.trim(), "socket-proxy");
    const runDenied = await inNetns("docker", [
      "-H",
      "tcp://127.0.0.1:2375",
      "run",
      "--rm",
      IMAGE,
      "--version",
    ]);
    assert.notEqual(runDenied.code, 0);
    assert.match(runDenied.err, /Error response from daemon: portcullis denied/);

    const rm = await runDocker(node.host, ["rm", "-f", id]);
    assert.equal(rm.code, 0, rm.stderr);
  });

  it("compose (deploy/compose.yaml, carried out with docker commands): Traefik's docker-provider calls pass, the rest is denied", {
    timeout: 150_000,
  }, async () => {
    assert.ok(node);
    const host = node.host;
    const project = "pc";
    const vars = { PORTCULLIS_IMAGE: IMAGE, DOCKER_GID: String(statSync(node.socketPath).gid) };
    const doc = parseYaml(read("deploy/compose.yaml")) as {
      services: Record<
        string,
        Svc & { depends_on?: string[]; group_add?: string[]; ports?: string[]; restart?: string }
      >;
      networks: Record<string, { internal?: boolean }>;
    };
    const docker = async (args: string[]) => {
      const r = await runDocker(host, args, { timeoutMs: 60_000 });
      assert.equal(r.code, 0, `docker ${args.join(" ")}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const netName = (n: string) => `${project}_${n}`;
    await docker(["network", "create", netName("default")]);
    for (const [n, spec] of Object.entries(doc.networks))
      await docker(["network", "create", ...(spec?.internal ? ["--internal"] : []), netName(n)]);

    // services in depends_on order; Traefik's slot runs the probe client
    const order = Object.keys(doc.services).sort((a, b) =>
      (doc.services[b]?.depends_on ?? []).includes(a)
        ? -1
        : (doc.services[a]?.depends_on ?? []).includes(b)
          ? 1
          : 0,
    );
    assert.deepEqual(order, ["socket-proxy", "traefik"]);
    const ids: Record<string, string> = {};
    for (const name of order) {
      const svc = doc.services[name] as NonNullable<(typeof doc.services)[string]>;
      const isClient = name === "traefik";
      const nets = svc.networks ?? ["default"];
      const args = [
        "create",
        "--name",
        `${project}-${name}-1`,
        "--network",
        netName(nets[0] ?? "default"),
        "--network-alias",
        name,
      ];
      // the probe client exits when done: no restart policy, no (proxy) healthcheck for it
      if (svc.restart && !isClient) args.push("--restart", svc.restart);
      if (isClient) args.push("--no-healthcheck");
      for (const g of svc.group_add ?? []) args.push("--group-add", interpolate(g, vars));
      if (svc.read_only) args.push("--read-only");
      for (const [k, v] of Object.entries(svc.environment ?? {})) args.push("-e", `${k}=${v}`);
      for (const v of (svc.volumes ?? []) as string[])
        args.push("-v", v.replace(/^\/var\/run\/docker\.sock:/, `${node.socketPath}:`));
      for (const p of svc.ports ?? []) args.push("-p", p);
      if (isClient)
        args.push("--entrypoint", "node", IMAGE, "-e", DOCKER_PROVIDER_CLIENT, "--", ...(svc.command ?? []));
      else args.push(interpolate(svc.image ?? "", vars), ...(svc.command ?? []));
      const id = await docker(args);
      for (const extra of nets.slice(1))
        await docker(["network", "connect", "--alias", name, netName(extra), id]);
      await docker(["start", id]);
      ids[name] = id;
    }
    const client = ids.traefik as string;
    const deadline = Date.now() + 60_000;
    let status = "";
    while (Date.now() < deadline) {
      status = (
        await runDocker(host, ["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", client])
      ).stdout.trim();
      if (status.startsWith("exited")) break;
      await sleep(500);
    }
    const logs = await runDocker(host, ["logs", client]);
    assert.equal(status, "exited 0", `${logs.stdout}${logs.stderr}`);
    checkProviderResult(JSON.parse(logs.stdout.trim().split("\n").at(-1) ?? "{}") as ProviderResult, [
      `/${project}-socket-proxy-1`,
      `/${project}-traefik-1`,
    ]);
    // the proxy's network is internal: no gateway out
    const internal = await docker([
      "network",
      "inspect",
      "--format",
      "{{.Internal}}",
      netName("socket-proxy"),
    ]);
    assert.equal(internal, "true");
  });
});
