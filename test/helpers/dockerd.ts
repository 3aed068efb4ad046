/**
 * Test helper: a private, throw-away Docker engine (Debian's docker.io `dockerd`).
 *
 * Each engine lives in its own temp dir /tmp/portcullis-dockerd-XXXXXX (socket,
 * data-root, exec-root, pidfile, log) and owns one randomly chosen 10.X.0.0/16
 * (X in 200..250) for all its networks: its own pre-created bridge `pcbX` (default
 * bridge network, 10.X.0.1/24), `pcgX` (docker_gwbridge, 10.X.1.0/24), user networks
 * from 10.X.64.0/18 and swarm networks from 10.X.128.0/18. It never uses docker0,
 * the host's iptables, /etc/docker/daemon.json or the default cgroup parent, so
 * several engines (and a host dockerd) can run side by side.
 *
 * Usage in a node:test file:
 *
 *   import { describeWithDockerd } from "../helpers/dockerd.js";
 *   describeWithDockerd("services", { swarm: true }, (engine) => {
 *     it("lists services", async () => {
 *       const r = await runDocker(engine.host, ["service", "ls"]);
 *       assert.equal(r.code, 0, r.stderr);
 *     });
 *   });
 *
 * or, by hand:
 *
 *   const { engine, skip } = await requireDockerd({ tcp: true });
 *   describe("x", { skip }, () => { after(() => engine?.stop()); it(...) });
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import dgram from "node:dgram";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runDocker } from "./docker-cli.js";
import {
  cgroupDirs,
  cgroupPids,
  type DaemonAttempt,
  daemonArgs,
  exitSafetyNet,
  killUntilGone,
  launchWithStorageDrivers,
  onPath,
  pidAlive,
  pidsMentioning,
  ping,
  removeAllContainers,
  removeCgroupTree,
  removeDaemonState,
  removeDirSync,
  runSync,
  spawnDaemon,
  tail,
  unmountUnder,
} from "./dockerd-common.js";

export { pidsMentioning };

export interface PrivateDockerd {
  /** Absolute path of the engine's unix socket. */
  socketPath: string;
  /** `unix://<socketPath>`: pass to `docker -H` / runDocker. */
  host: string;
  /** "127.0.0.1:PORT" when started with `tcp: true` (plain HTTP, no TLS). */
  tcpAddress?: string;
  /** The engine's temp dir (socket, data, exec, log). Removed by stop(). */
  dir: string;
  /** A local image with busybox (sh, cat, sleep, echo, ls, true, env, id, head, wc, dd), "portcullis-busybox:test"; "" when started with `image: false`. */
  image: string;
  /** Whether this engine is a single-node swarm manager. */
  swarm: boolean;
  /** dockerd's pid. */
  pid: number;
  /** The /16 this engine's networks are carved from, e.g. "10.213.0.0/16". */
  subnet: string;
  /** The storage driver in use ("overlay2" or "vfs"). */
  storageDriver: string;
  /** Path of dockerd's combined stdout/stderr. */
  logPath: string;
  /** Milliseconds spent in each start-up phase. */
  timings: { daemon: number; swarm?: number; image?: number };
  /** Best-effort, idempotent teardown; touches only this engine. */
  stop(): Promise<void>;
}

export interface DockerdOptions {
  /** `docker swarm init` the engine (single-node manager). Default false. */
  swarm?: boolean;
  /** Also listen on tcp://127.0.0.1:<free port>. Default false. */
  tcp?: boolean;
  /** With `tcp`: serve it with TLS and require client certificates signed by `ca` (dockerd --tlsverify). */
  tls?: { ca: string; cert: string; key: string };
  /** Import the busybox test image. Default true. */
  image?: boolean;
  /** Bound on waiting for `/_ping`. Default 30 s. */
  startTimeoutMs?: number;
}

export type DockerdOrSkip =
  | { engine: PrivateDockerd; skip?: undefined }
  | { engine?: undefined; skip: string };

export const TEST_IMAGE = "portcullis-busybox:test";
/** Marker in every engine's temp dir name; .ci/run uses it to find leftovers. */
export const DIR_PREFIX = "portcullis-dockerd-";

const BUSYBOX_APPLETS = ["sh", "cat", "sleep", "echo", "ls", "true", "env", "id", "head", "wc", "dd"];
/** Lines of dockerd.log quoted in errors. */
const LOG_TAIL = 40;
const SKIP_HINT =
  "needs a private Docker engine: run as root with Debian's docker.io and busybox-static installed (apt-get install docker.io busybox-static)";

/* ------------------------------------------------------------------ availability */

function findBusybox(): string | undefined {
  for (const p of ["/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox", "/sbin/busybox"]) {
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** What is missing to run a private engine, or undefined when everything is there. */
export function dockerdMissing(opts: { image?: boolean } = {}): string | undefined {
  const missing: string[] = [];
  if (process.platform !== "linux") missing.push(`Linux (this is ${process.platform})`);
  if (typeof process.getuid !== "function" || process.getuid() !== 0) missing.push("root (uid 0)");
  if (!onPath("dockerd")) missing.push("`dockerd` on PATH (Debian package docker.io)");
  if (!onPath("docker")) missing.push("the `docker` CLI on PATH (Debian package docker.io)");
  if (!onPath("ip")) missing.push("`ip` on PATH (Debian package iproute2)");
  if (opts.image !== false && !findBusybox()) missing.push("/bin/busybox (Debian package busybox-static)");
  return missing.length ? missing.join(", ") : undefined;
}

function inCI(): boolean {
  return process.env.CI === "true";
}

/**
 * Sync check: a skip reason when no private engine can run here, else undefined.
 * Under CI=true a missing prerequisite throws instead, so CI can't silently skip.
 */
export function dockerdSkipReason(opts: { image?: boolean } = {}): string | undefined {
  const missing = dockerdMissing(opts);
  if (!missing) return undefined;
  if (inCI()) throw new Error(`CI=true but a private Docker engine cannot run here: missing ${missing}`);
  return `${SKIP_HINT} (missing: ${missing})`;
}

/** Starts an engine, or returns a skip reason when none can run here (throws under CI=true). */
export async function requireDockerd(opts: DockerdOptions = {}): Promise<DockerdOrSkip> {
  const skip = dockerdSkipReason(opts);
  if (skip) return { skip };
  return { engine: await startDockerd(opts) };
}

/**
 * `describe` whose body gets a started engine, stopped by an `after` hook;
 * when no engine can run here (and not CI) the suite is reported as skipped.
 */
export function describeWithDockerd(
  name: string,
  opts: DockerdOptions,
  body: (engine: PrivateDockerd) => void | Promise<void>,
): void {
  const skip = dockerdSkipReason(opts);
  describe(name, { skip: skip ?? false }, async () => {
    if (skip) {
      it("skipped", { skip }, () => {});
      return;
    }
    const engine = await startDockerd(opts);
    after(() => engine.stop());
    await body(engine);
  });
}

/* ------------------------------------------------------------------ small utilities */

function ipv4ToInt(a: string): number | undefined {
  const p = a.split(".").map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) return undefined;
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}

/** CIDRs (prefix >= 16) currently on the host: interface addresses and routes. */
function hostCidrs(): Array<{ net: number; len: number }> {
  const out: Array<{ net: number; len: number }> = [];
  const text = `${runSync("ip", ["-4", "-o", "addr", "show"]).stdout}\n${runSync("ip", ["-4", "route", "show", "table", "all"]).stdout}`;
  for (const m of text.matchAll(/\b(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?\b/g)) {
    const ip = ipv4ToInt(m[1] ?? "");
    const len = m[2] === undefined ? 32 : Number(m[2]);
    if (ip === undefined || len < 16) continue;
    out.push({ net: ip, len });
  }
  return out;
}

function overlaps16(x: number, cidrs: Array<{ net: number; len: number }>): boolean {
  // our block is 10.x.0.0/16; any host prefix of length >= 16 overlaps iff its top 16 bits match
  const ours = ((10 << 24) | (x << 16)) >>> 0;
  return cidrs.some((c) => c.net >>> 16 === ours >>> 16);
}

function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

async function portIsFree(proto: "tcp" | "udp", port: number): Promise<boolean> {
  if (proto === "tcp") {
    return new Promise((resolve) => {
      const s = net.createServer();
      s.once("error", () => resolve(false));
      s.listen({ port, host: "0.0.0.0", exclusive: true }, () => s.close(() => resolve(true)));
    });
  }
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    s.once("error", () => {
      s.close();
      resolve(false);
    });
    s.bind({ port, address: "0.0.0.0", exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A free port in [20000, 32767] (below the ephemeral range; swarm's data-path-port must be <= 49151). */
async function pickPort(proto: "tcp" | "udp", avoid: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = randomInt(20000, 32768);
    if (avoid.has(p)) continue;
    if (await portIsFree(proto, p)) {
      avoid.add(p);
      return p;
    }
  }
  throw new Error(`no free ${proto} port found`);
}

/* ------------------------------------------------------------------ live engines & safety net */

interface Resources {
  dir: string;
  child?: ChildProcess;
  links: string[];
  subnetX?: number;
  cgroupParent: string;
}

const live = new Set<Resources>();
const claimedX = new Set<number>();

/** Links whose IPv4 address is inside 10.x.0.0/16 (bridges dockerd made for user networks). */
function linksInSubnet(x: number): string[] {
  const names: string[] = [];
  for (const line of runSync("ip", ["-4", "-o", "addr", "show"]).stdout.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet\s+10\.(\d+)\./.exec(line);
    if (m && Number(m[2]) === x && m[1] && m[1] !== "lo") names.push(m[1].split("@")[0] ?? m[1]);
  }
  return names;
}

/**
 * Synchronous teardown of everything a (dead or alive) engine left: used by stop() and by the exit net.
 * `partial`: only the daemon's processes, mounts, cgroups and data/exec dirs (between storage-driver attempts).
 */
function teardownSync(res: Resources, partial = false): void {
  const { dir } = res;
  // 1. processes: dockerd, containerd, shims (cmdline mentions dir), container processes (our cgroup)
  killUntilGone(
    () => {
      const pids = new Set<number>(pidsMentioning(dir));
      if (res.child?.pid && res.child.exitCode === null && res.child.signalCode === null)
        pids.add(res.child.pid);
      for (const cg of cgroupDirs(res.cgroupParent)) for (const p of cgroupPids(cg)) pids.add(p);
      return pids;
    },
    3,
    "0.2",
  );
  // 2. mounts under dir (netns bind mounts, overlay mounts, shm)
  unmountUnder(dir);
  // 3. cgroups
  for (const cg of cgroupDirs(res.cgroupParent)) removeCgroupTree(cg);
  if (partial) {
    removeDaemonState(dir);
    return;
  }
  // 4. network links (ours by name, plus dockerd's br-* inside our /16)
  const links = new Set(res.links);
  if (res.subnetX !== undefined) for (const l of linksInSubnet(res.subnetX)) links.add(l);
  for (const l of links) if (linkExists(l)) runSync("ip", ["link", "del", l]);
  if (res.subnetX !== undefined) claimedX.delete(res.subnetX);
  // 5. the dir
  removeDirSync(dir);
  live.delete(res);
}

const installSafetyNet = exitSafetyNet(live, (res) => teardownSync(res));

/* ------------------------------------------------------------------ leftovers of crashed runs */

function readEngineJson(dir: string): { x?: number; cgroupParent?: string } | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, "engine.json"), "utf8")) as {
      x?: number;
      cgroupParent?: string;
    };
  } catch {
    return undefined;
  }
}

/** Whether a dockerd (or the setpriv wrapper about to exec it) of `dir` is running. */
function daemonRunning(dir: string): boolean {
  return pidsMentioning(dir).some((p) => {
    try {
      const argv0 = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[0] ?? "";
      return /(^|\/)(dockerd|setpriv)$/.test(argv0);
    } catch {
      return false;
    }
  });
}

/**
 * Cleans up after engines whose owning process died without stop() (e.g. SIGKILLed: setpriv's
 * pdeathsig kills dockerd, but shims, containers, mounts, cgroups and bridges stay). Only touches
 * /tmp/portcullis-dockerd-* dirs older than `minAgeMs` whose dockerd is gone, and pcbX/pcgX
 * bridges that no such dir claims. Called by startDockerd(); safe to call any time.
 */
export function sweepStaleEngines(minAgeMs = 60_000): string[] {
  const swept: string[] = [];
  const mine = new Set([...live].map((r) => r.dir));
  let names: string[] = [];
  try {
    names = readdirSync("/tmp").filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return swept;
  }
  const claimed = new Set<number>(claimedX);
  for (const n of names) {
    const dir = join("/tmp", n);
    const meta = readEngineJson(dir);
    let age = 0;
    try {
      age = Date.now() - statSync(dir).mtimeMs;
    } catch {
      continue;
    }
    if (mine.has(dir) || age < minAgeMs || daemonRunning(dir)) {
      if (meta?.x !== undefined) claimed.add(meta.x);
      continue;
    }
    const res: Resources = { dir, links: [], cgroupParent: meta?.cgroupParent ?? n };
    if (meta?.x !== undefined) {
      res.subnetX = meta.x;
      res.links.push(`pcb${meta.x}`, `pcg${meta.x}`);
    }
    teardownSync(res);
    swept.push(dir);
  }
  // bridges of ours that no engine dir claims any more
  let links: string[] = [];
  try {
    links = readdirSync("/sys/class/net");
  } catch {
    /* ignore */
  }
  // re-read every engine.json *after* listing the links: an engine writes its engine.json before
  // creating its bridge, so any bridge we listed is seen as claimed here if it belongs to someone
  let again: string[] = [];
  try {
    again = readdirSync("/tmp").filter((d) => d.startsWith(DIR_PREFIX));
  } catch {
    /* ignore */
  }
  for (const n of again) {
    const x = readEngineJson(join("/tmp", n))?.x;
    if (x !== undefined && !swept.includes(join("/tmp", n))) claimed.add(x);
  }
  for (const l of links) {
    const m = /^pc[bg](\d+)$/.exec(l);
    if (m && !claimed.has(Number(m[1]))) {
      runSync("ip", ["link", "del", l]);
      swept.push(l);
    }
  }
  return swept;
}

/* ------------------------------------------------------------------ start */

async function claimSubnet(res: Resources): Promise<number> {
  const candidates: number[] = [];
  for (let x = 200; x <= 250; x++) candidates.push(x);
  for (let i = candidates.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [candidates[i], candidates[j]] = [candidates[j] as number, candidates[i] as number];
  }
  const host = hostCidrs();
  for (const x of candidates) {
    if (claimedX.has(x) || overlaps16(x, host)) continue;
    const br = `pcb${x}`;
    const gw = `pcg${x}`;
    if (linkExists(br) || linkExists(gw)) continue;
    // record the intent first, so that a concurrent sweepStaleEngines() never takes our fresh bridge for a leftover
    writeFileSync(join(res.dir, "engine.json"), `${JSON.stringify({ x, cgroupParent: res.cgroupParent })}\n`);
    // `ip link add` is atomic: the bridge name is our cross-process lock on 10.x/16
    if (runSync("ip", ["link", "add", "name", br, "type", "bridge"]).code !== 0) continue;
    claimedX.add(x);
    res.subnetX = x;
    res.links.push(br, gw);
    // re-check: someone else may have started using 10.x between our look and our claim
    const others = linksInSubnet(x).filter((l) => l !== br);
    if (others.length > 0) {
      runSync("ip", ["link", "del", br]);
      claimedX.delete(x);
      res.subnetX = undefined;
      res.links.length = 0;
      continue;
    }
    const a = runSync("ip", ["addr", "add", `10.${x}.0.1/24`, "dev", br]);
    const u = runSync("ip", ["link", "set", br, "up"]);
    if (a.code !== 0 || u.code !== 0)
      throw new Error(`could not configure bridge ${br}: ${a.stderr}${u.stderr}`);
    return x;
  }
  throw new Error("no free 10.X.0.0/16 (X in 200..250) for a private Docker engine");
}

async function buildRootfsTar(dir: string): Promise<Buffer> {
  const busybox = findBusybox();
  if (!busybox) throw new Error("busybox not found (apt-get install busybox-static)");
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "bin"), { recursive: true });
  for (const d of ["tmp", "etc", "proc", "sys", "dev"]) await mkdir(join(rootfs, d), { recursive: true });
  await chmod(join(rootfs, "tmp"), 0o1777);
  await copyFile(busybox, join(rootfs, "bin", "busybox"));
  await chmod(join(rootfs, "bin", "busybox"), 0o755);
  for (const a of BUSYBOX_APPLETS) await symlink("busybox", join(rootfs, "bin", a));
  await writeFile(
    join(rootfs, "etc", "passwd"),
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
  );
  await writeFile(join(rootfs, "etc", "group"), "root:x:0:\nnogroup:x:65534:\n");
  return new Promise((resolve, reject) => {
    const tar = spawn("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", rootfs, "-c", "."], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    let err = "";
    tar.stdout.on("data", (b: Buffer) => chunks.push(b));
    tar.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    tar.on("error", reject);
    tar.on("close", (code) =>
      code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`tar failed (${code}): ${err}`)),
    );
  });
}

function launchDaemon(
  res: Resources,
  args: string[],
  logPath: string,
  socketPath: string,
  tcp: { host: string; port: number } | undefined,
  timeoutMs: number,
): Promise<DaemonAttempt> {
  // setpriv --pdeathsig: dockerd is SIGKILLed if this Node process dies without cleaning up
  const usePdeath = onPath("setpriv");
  return spawnDaemon(
    usePdeath ? "setpriv" : "dockerd",
    usePdeath ? ["--pdeathsig", "KILL", "--", "dockerd", ...args] : args,
    logPath,
    (child) => {
      res.child = child;
    },
    async () => (await ping({ socketPath })) && (!tcp || (await ping(tcp))),
    timeoutMs,
  );
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  if (child.pid === undefined) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.removeListener("exit", onExit);
      resolve(!pidAlive(child.pid as number));
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

/** Starts a private engine. Throws (with the tail of dockerd.log) if it can't. */
export async function startDockerd(opts: DockerdOptions = {}): Promise<PrivateDockerd> {
  const missing = dockerdMissing(opts);
  if (missing) throw new Error(`cannot start a private Docker engine: missing ${missing}`);
  const wantImage = opts.image !== false;
  const wantSwarm = opts.swarm === true;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;

  sweepStaleEngines();
  const dir = await mkdtemp(join("/tmp", DIR_PREFIX));
  const suffix = dir.slice(dir.lastIndexOf("-") + 1);
  const res: Resources = { dir, links: [], cgroupParent: `${DIR_PREFIX}${suffix}` };
  live.add(res);
  installSafetyNet();

  const socketPath = join(dir, "docker.sock");
  const host = `unix://${socketPath}`;
  const logPath = join(dir, "dockerd.log");
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const alive = res.child && res.child.exitCode === null && res.child.signalCode === null;
      if (alive) {
        if (wantSwarm) await runDocker(host, ["swarm", "leave", "--force"], { timeoutMs: 20_000 });
        await removeAllContainers(host);
        await runDocker(host, ["network", "prune", "-f"], { timeoutMs: 10_000 });
        const child = res.child as ChildProcess;
        child.kill("SIGTERM");
        if (!(await waitExit(child, 15_000))) {
          child.kill("SIGKILL");
          await waitExit(child, 5_000);
        }
      }
      teardownSync(res);
    })();
    return stopping;
  };

  try {
    const x = await claimSubnet(res);
    const ports = new Set<number>();
    const tcpPort = opts.tcp ? await pickPort("tcp", ports) : undefined;
    const baseArgs = await daemonArgs(
      dir,
      socketPath,
      res.cgroupParent,
      [
        ...(tcpPort ? [`--host=tcp://127.0.0.1:${tcpPort}`] : []),
        ...(tcpPort && opts.tls
          ? [
              "--tlsverify",
              `--tlscacert=${opts.tls.ca}`,
              `--tlscert=${opts.tls.cert}`,
              `--tlskey=${opts.tls.key}`,
            ]
          : []),
      ],
      [
        `--bridge=pcb${x}`, // our own bridge (10.x.0.1/24), not docker0
        `--default-address-pool=base=10.${x}.64.0/18,size=24`,
        "--iptables=false", // don't rewrite the host's (shared) DOCKER chains
        "--ip-masq=false",
        "--ip-forward=false", // don't flip the host's net.ipv4.ip_forward
        "--userland-proxy=false",
      ],
    );

    const t0 = Date.now();
    const { driver: storageDriver } = await launchWithStorageDrivers(
      (driver) =>
        launchDaemon(
          res,
          [...baseArgs, `--storage-driver=${driver}`],
          logPath,
          socketPath,
          // A TLS listener can't answer a plain-HTTP ping: readiness is checked on the unix socket then.
          tcpPort && !opts.tls ? { host: "127.0.0.1", port: tcpPort } : undefined,
          startTimeoutMs,
        ),
      () => teardownSync(res, true),
      { label: "private dockerd", logPath, timeoutMs: startTimeoutMs, tailLines: LOG_TAIL },
    );
    const timings: PrivateDockerd["timings"] = { daemon: Date.now() - t0 };

    if (wantSwarm) {
      const t1 = Date.now();
      const listenPort = await pickPort("tcp", ports);
      const dataPathPort = await pickPort("udp", ports);
      // pre-create docker_gwbridge on our own bridge name and subnet (default would be "docker_gwbridge"/172.x)
      const gw = await runDocker(host, [
        "network",
        "create",
        "--driver=bridge",
        `--subnet=10.${x}.1.0/24`,
        `--opt=com.docker.network.bridge.name=pcg${x}`,
        "--opt=com.docker.network.bridge.enable_icc=false",
        "--opt=com.docker.network.bridge.enable_ip_masquerade=false",
        "docker_gwbridge",
      ]);
      if (gw.code !== 0) throw new Error(`could not create docker_gwbridge: ${gw.stderr}`);
      const init = await runDocker(
        host,
        [
          "swarm",
          "init",
          "--advertise-addr=127.0.0.1",
          `--listen-addr=127.0.0.1:${listenPort}`,
          `--data-path-port=${dataPathPort}`,
          `--default-addr-pool=10.${x}.128.0/18`,
          "--default-addr-pool-mask-length=24",
        ],
        { timeoutMs: 60_000 },
      );
      if (init.code !== 0)
        throw new Error(
          `docker swarm init failed: ${init.stderr}\ntail of ${logPath}:\n${tail(logPath, LOG_TAIL)}`,
        );
      timings.swarm = Date.now() - t1;
    }

    if (wantImage) {
      const t2 = Date.now();
      const tarball = await buildRootfsTar(dir);
      const imp = await runDocker(host, ["import", "--change", 'CMD ["sh"]', "-", TEST_IMAGE], {
        input: tarball,
        timeoutMs: 60_000,
      });
      if (imp.code !== 0) throw new Error(`docker import of ${TEST_IMAGE} failed: ${imp.stderr}`);
      await rm(join(dir, "rootfs"), { recursive: true, force: true });
      timings.image = Date.now() - t2;
    }

    const pid = res.child?.pid ?? Number((await readFile(join(dir, "pid"), "utf8")).trim());
    return {
      socketPath,
      host,
      ...(tcpPort ? { tcpAddress: `127.0.0.1:${tcpPort}` } : {}),
      dir,
      image: wantImage ? TEST_IMAGE : "",
      swarm: wantSwarm,
      pid,
      subnet: `10.${x}.0.0/16`,
      storageDriver,
      logPath,
      timings,
      stop,
    };
  } catch (e) {
    const logTail = existsSync(logPath) ? tail(logPath, LOG_TAIL) : "";
    await stop().catch(() => {});
    if (e instanceof Error && logTail && !e.message.includes("tail of"))
      e.message += `\ntail of dockerd.log:\n${logTail}`;
    throw e;
  }
}

/* ------------------------------------------------------------------ fault injection */

/**
 * Stops the engine's dockerd (SIGTERM; SIGKILL after `timeoutMs`) and nothing else: data, bridges and
 * the temp dir stay. `start()` runs dockerd again with the arguments it had and resolves once its
 * `/_ping` answers (engine.pid is updated). stop() cleans up whichever dockerd runs at the end. For
 * fault tests: stop while no container runs, or dockerd waits for each container's stop timeout.
 */
export async function stopDaemonProcess(
  engine: PrivateDockerd,
  timeoutMs = 20_000,
): Promise<{ start(): Promise<void> }> {
  const res = [...live].find((r) => r.dir === engine.dir);
  const child = res?.child;
  if (res === undefined || child?.pid === undefined || child.exitCode !== null || child.signalCode !== null)
    throw new Error(`no running dockerd for ${engine.dir}`);
  // setpriv execs dockerd in the same process: its argv is dockerd's own.
  const argv = readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  const at = argv.findIndex((a) => /(^|\/)dockerd$/.test(a));
  if (at === -1) throw new Error(`pid ${child.pid} is not dockerd: ${argv.join(" ")}`);
  const args = argv.slice(at + 1);
  child.kill("SIGTERM");
  if (!(await waitExit(child, timeoutMs))) {
    child.kill("SIGKILL");
    await waitExit(child, 5_000);
  }
  return {
    async start() {
      const tcp = engine.tcpAddress
        ? { host: "127.0.0.1", port: Number(engine.tcpAddress.slice(engine.tcpAddress.lastIndexOf(":") + 1)) }
        : undefined;
      const attempt = await launchDaemon(res, args, engine.logPath, engine.socketPath, tcp, 30_000);
      if (!attempt.ok)
        throw new Error(
          `dockerd did not come back; tail of ${engine.logPath}:\n${tail(engine.logPath, LOG_TAIL)}`,
        );
      engine.pid = attempt.child.pid ?? engine.pid;
    },
  };
}
