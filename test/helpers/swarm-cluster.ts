/**
 * Test helper: a throw-away multi-node Docker Swarm on one machine.
 *
 * Every node is a private dockerd (Debian's docker.io) in its own network namespace and UTS
 * namespace (so `{{.Node.Hostname}}` differs per node), with its own data root, exec root,
 * pidfile, cgroup parent and unix socket. Sockets live in the root file system
 * (/tmp/portcullis-swarm-XXXXXX/<node>/docker.sock), so the test process reaches every node
 * directly and a service can bind-mount its node's socket with the mount template
 * `${cluster.socketTemplate}` (".../{{.Node.Hostname}}/docker.sock").
 *
 * Addresses: everything is inside 10.249.0.0/16, used only by these nodes:
 *   node links      10.249.0.0/24 on the root-namespace bridge `pcswbr0` (one veth per node;
 *                   the bridge itself has no address, so the root namespace is not reachable)
 *   node i docker0  10.249.(16+i).1/24            (--bip)
 *   node i local    10.249.(32+8i).0/21 in /24s   (--default-address-pool; docker_gwbridge too)
 *   swarm overlays  10.249.128.0/17 in /24s       (swarm init --default-addr-pool)
 * The bridge name is the lock: one cluster per machine at a time.
 *
 * dockerd sets the root namespace's FORWARD policy to DROP (and bridged frames go through
 * iptables when br_netfilter is loaded), so an ACCEPT rule for the bridge is inserted into
 * FORWARD and removed at teardown. The kernel has no IPVS here: services must use
 * `endpoint_mode: dnsrr` and no ingress-published ports.
 *
 * Teardown (stop(), or the exit/signal safety net, or the sweep of a crashed run's leftovers)
 * removes services, swarm state, dockerds, shims and containers, mounts, cgroups, namespaces,
 * veths, the bridge, the iptables rule and the temp dir. Every wait is bounded.
 *
 *   const skip = swarmClusterSkipReason();           // string when it can't run here (throws if CI=true)
 *   const cluster = await startSwarmCluster({ managers: 1, workers: 1 });
 *   try { await runDocker(cluster.manager.host, ["node", "ls"]); } finally { await cluster.stop(); }
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { runDocker } from "./docker-cli.js";
import * as common from "./dockerd-common.js";

export interface SwarmNode {
  /** Node name, also its hostname inside its UTS namespace: "pcsw-m1", "pcsw-w1", ... */
  name: string;
  role: "manager" | "worker";
  /** The node's address on the test bridge (10.249.0.x). */
  ip: string;
  /** `ip netns` name. */
  netns: string;
  socketPath: string;
  /** `unix://<socketPath>`, for `docker -H` / runDocker. */
  host: string;
  /** This node's dir (data, exec, socket, log). */
  dir: string;
  logPath: string;
  pid: number;
  /** Swarm node ID (set once the node is in the swarm). */
  nodeId: string;
}

export interface SwarmCluster {
  dir: string;
  nodes: SwarmNode[];
  /** The first manager (swarm init ran there). */
  manager: SwarmNode;
  managers(): SwarmNode[];
  workers(): SwarmNode[];
  /** Bind-mount source that resolves to each node's own socket: "<dir>/{{.Node.Hostname}}/docker.sock". */
  socketTemplate: string;
  node(name: string): SwarmNode;
  /** `docker node promote` a worker and wait until it is a reachable manager. */
  promote(name: string, timeoutMs?: number): Promise<void>;
  /** Best-effort, idempotent teardown of everything the cluster created. */
  stop(): Promise<void>;
  timings: Record<string, number>;
}

export interface SwarmClusterOptions {
  managers?: number;
  workers?: number;
  /** Bound on each dockerd's start. Default 40 s. */
  startTimeoutMs?: number;
  /** Form the swarm (init + join). Default true; false gives plain engines in their namespaces. */
  swarm?: boolean;
}

export const SWARM_DIR_PREFIX = "portcullis-swarm-";
/** Lines of each dockerd.log quoted in errors. */
const LOG_TAIL = 30;
const BRIDGE = "pcswbr0";
const NET_PREFIX = "10.249.0";
const ADDR_POOL = "10.249.128.0/17";
const IPT_COMMENT = "portcullis-swarm-test";
const IPT_RULE = [
  "FORWARD",
  "-i",
  BRIDGE,
  "-o",
  BRIDGE,
  "-m",
  "comment",
  "--comment",
  IPT_COMMENT,
  "-j",
  "ACCEPT",
];

/** Every ip/iptables/umount call here is bounded by this. */
const RUN_TIMEOUT_MS = 15_000;
const runSync = (cmd: string, args: string[]) => common.runSync(cmd, args, RUN_TIMEOUT_MS);

/* ------------------------------------------------------------------ availability */

export function swarmClusterMissing(): string | undefined {
  const missing: string[] = [];
  if (process.platform !== "linux") missing.push(`Linux (this is ${process.platform})`);
  if (typeof process.getuid !== "function" || process.getuid() !== 0) missing.push("root (uid 0)");
  for (const [cmd, pkg] of [
    ["dockerd", "docker.io"],
    ["docker", "docker.io"],
    ["ip", "iproute2"],
    ["iptables", "iptables"],
    ["nsenter", "util-linux"],
    ["unshare", "util-linux"],
    ["tar", "tar"],
    ["ldd", "libc-bin"],
  ] as const) {
    if (!common.onPath(cmd)) missing.push(`\`${cmd}\` (Debian package ${pkg})`);
  }
  return missing.length ? missing.join(", ") : undefined;
}

/** A skip reason when a multi-node swarm can't run here; under CI=true it throws instead. */
export function swarmClusterSkipReason(): string | undefined {
  const missing = swarmClusterMissing();
  if (!missing) return undefined;
  if (process.env.CI === "true")
    throw new Error(`CI=true but a multi-node test swarm cannot run here: missing ${missing}`);
  return `needs root, Debian's docker.io, iproute2, iptables and util-linux to run a multi-node test swarm (missing: ${missing})`;
}

/* ------------------------------------------------------------------ teardown primitives */

interface NodeRes {
  name: string;
  dir: string;
  netns: string;
  veth: string;
  cgroupParent: string;
  child?: ChildProcess;
}

interface ClusterRes {
  dir: string;
  ownerPid: number;
  bridge: boolean;
  iptables: boolean;
  nodes: NodeRes[];
}

function writeState(res: ClusterRes): void {
  const { dir, ownerPid, bridge, iptables, nodes } = res;
  const plain = { dir, ownerPid, bridge, iptables, nodes: nodes.map(({ child: _c, ...n }) => n) };
  writeFileSync(join(dir, "cluster.json"), `${JSON.stringify(plain, null, 2)}\n`);
}

function iptablesRulePresent(): boolean {
  return runSync("iptables", ["-C", ...IPT_RULE]).code === 0;
}

/** Synchronous teardown of everything `res` lists; safe on a half-built or already torn down cluster. */
function teardownSync(res: ClusterRes): void {
  // 1. processes: dockerds, containerds, shims (cmdline mentions the dir) and container processes (our cgroups)
  common.killUntilGone(
    () => {
      const pids = new Set<number>(common.pidsMentioning(res.dir));
      for (const n of res.nodes) {
        if (n.child?.pid && n.child.exitCode === null && n.child.signalCode === null) pids.add(n.child.pid);
        for (const cg of common.cgroupDirs(n.cgroupParent))
          for (const p of common.cgroupPids(cg)) pids.add(p);
      }
      return pids;
    },
    4,
    "0.3",
  );
  // 2. mounts under the dir (overlay layers, shm, netns bind mounts of containers)
  common.unmountUnder(res.dir, RUN_TIMEOUT_MS);
  // 3. cgroups
  for (const n of res.nodes) for (const cg of common.cgroupDirs(n.cgroupParent)) common.removeCgroupTree(cg);
  // 4. namespaces and links (deleting a netns destroys the veth peer inside it, and so the pair)
  for (const n of res.nodes) {
    if (existsSync(`/var/run/netns/${n.netns}`)) runSync("ip", ["netns", "del", n.netns]);
    if (existsSync(`/sys/class/net/${n.veth}`)) runSync("ip", ["link", "del", n.veth]);
  }
  if (res.iptables) {
    for (let i = 0; i < 5 && iptablesRulePresent(); i++) runSync("iptables", ["-D", ...IPT_RULE]);
    res.iptables = false;
  }
  if (res.bridge && existsSync(`/sys/class/net/${BRIDGE}`)) runSync("ip", ["link", "del", BRIDGE]);
  res.bridge = false;
  // 5. the dir
  common.removeDirSync(res.dir, RUN_TIMEOUT_MS);
  live.delete(res);
}

const live = new Set<ClusterRes>();
const installSafetyNet = common.exitSafetyNet(live, teardownSync);

/** Tears down clusters whose owning process is gone (a crashed or SIGKILLed run). Returns their dirs. */
export function sweepStaleClusters(): string[] {
  const swept: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync("/tmp").filter((n) => n.startsWith(SWARM_DIR_PREFIX));
  } catch {
    return swept;
  }
  let ownedByLiveProcess = false;
  for (const n of names) {
    const dir = join("/tmp", n);
    if ([...live].some((r) => r.dir === dir)) {
      ownedByLiveProcess = true;
      continue;
    }
    let state: ClusterRes | undefined;
    try {
      state = JSON.parse(readFileSync(join(dir, "cluster.json"), "utf8")) as ClusterRes;
    } catch {
      state = undefined;
    }
    if (state && common.pidAlive(state.ownerPid)) {
      ownedByLiveProcess = true;
      continue;
    }
    if (!state) {
      // no state file: only sweep when it is old (a run that died before writing it)
      try {
        if (Date.now() - statSync(dir).mtimeMs < 60_000) continue;
      } catch {
        continue;
      }
      state = { dir, ownerPid: 0, bridge: false, iptables: false, nodes: [] };
    }
    teardownSync({ ...state, dir });
    swept.push(dir);
  }
  // a bridge or rule without any owner: remove
  if (!ownedByLiveProcess) {
    if (existsSync(`/sys/class/net/${BRIDGE}`)) runSync("ip", ["link", "del", BRIDGE]);
    for (let i = 0; i < 5 && iptablesRulePresent(); i++) runSync("iptables", ["-D", ...IPT_RULE]);
    for (const ns of runSync("ip", ["netns", "list"]).stdout.split("\n")) {
      const name = ns.split(" ")[0] ?? "";
      if (/^pcsw-[mw]\d+$/.test(name)) runSync("ip", ["netns", "del", name]);
    }
  }
  return swept;
}

/* ------------------------------------------------------------------ start */

function must(r: { code: number | null; stderr: string; stdout?: string }, what: string): void {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
}

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined>,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await common.sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

async function startNodeDaemon(
  n: NodeRes,
  index: number,
  timeoutMs: number,
): Promise<{ pid: number; socketPath: string; logPath: string }> {
  const socketPath = join(n.dir, "docker.sock");
  const logPath = join(n.dir, "dockerd.log");
  const base = await common.daemonArgs(
    n.dir,
    socketPath,
    n.cgroupParent,
    [],
    [`--bip=10.249.${16 + index}.1/24`, `--default-address-pool=base=10.249.${32 + 8 * index}.0/21,size=24`],
  );
  const { attempt } = await common.launchWithStorageDrivers(
    (driver) =>
      // one process all the way: setpriv (pdeathsig: dies with this test process) -> nsenter into the
      // node's netns (keeps the root mount namespace and its cgroup mounts) -> unshare a UTS namespace
      // -> set the node's hostname -> exec dockerd
      common.spawnDaemon(
        "setpriv",
        [
          "--pdeathsig",
          "KILL",
          "--",
          "nsenter",
          `--net=/var/run/netns/${n.netns}`,
          "--",
          "unshare",
          "--uts",
          "--",
          "sh",
          "-c",
          'hostname "$0" && exec dockerd "$@"',
          n.name,
          ...base,
          `--storage-driver=${driver}`,
        ],
        logPath,
        (child) => {
          n.child = child;
        },
        () => common.ping({ socketPath }),
        timeoutMs,
      ),
    async ({ child, exited }) => {
      if (!exited) child.kill("SIGKILL");
      await common.sleep(300);
      common.killPids(common.pidsMentioning(n.dir));
      common.unmountUnder(n.dir, RUN_TIMEOUT_MS);
      common.removeDaemonState(n.dir);
    },
    { label: `dockerd of ${n.name}`, logPath, timeoutMs, tailLines: LOG_TAIL },
  );
  return { pid: attempt.child.pid as number, socketPath, logPath };
}

export async function startSwarmCluster(opts: SwarmClusterOptions = {}): Promise<SwarmCluster> {
  const missing = swarmClusterMissing();
  if (missing) throw new Error(`cannot start a test swarm: missing ${missing}`);
  const managers = opts.managers ?? 1;
  const workers = opts.workers ?? 1;
  if (managers < 1 || managers + workers > 8) throw new Error("need 1..8 nodes with at least one manager");
  const startTimeoutMs = opts.startTimeoutMs ?? 40_000;
  const timings: Record<string, number> = {};
  const t0 = Date.now();

  sweepStaleClusters();
  const dir = await mkdtemp(join("/tmp", SWARM_DIR_PREFIX));
  const suffix = dir.slice(dir.lastIndexOf("-") + 1);
  const res: ClusterRes = { dir, ownerPid: process.pid, bridge: false, iptables: false, nodes: [] };
  live.add(res);
  installSafetyNet();

  const specs: Array<{ name: string; role: "manager" | "worker" }> = [];
  for (let i = 1; i <= managers; i++) specs.push({ name: `pcsw-m${i}`, role: "manager" });
  for (let i = 1; i <= workers; i++) specs.push({ name: `pcsw-w${i}`, role: "worker" });

  let stopping: Promise<void> | undefined;
  const nodes: SwarmNode[] = [];
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const alive = nodes.filter((n) => common.pidAlive(n.pid));
      // services first (while the managers still have quorum), then leave: workers, then managers
      const mgr = alive.find((n) => n.role === "manager");
      if (mgr && opts.swarm !== false) {
        const ls = await runDocker(mgr.host, ["service", "ls", "-q"], { timeoutMs: 10_000 });
        const ids = ls.stdout.split(/\s+/).filter(Boolean);
        if (ids.length) await runDocker(mgr.host, ["service", "rm", ...ids], { timeoutMs: 20_000 });
      }
      if (opts.swarm !== false) {
        for (const n of [...alive].sort((a, b) => (a.role === b.role ? 0 : a.role === "worker" ? -1 : 1))) {
          await runDocker(n.host, ["swarm", "leave", "--force"], { timeoutMs: 15_000 });
        }
      }
      await Promise.all(
        alive.map(async (n) => {
          await common.removeAllContainers(n.host);
          try {
            process.kill(n.pid, "SIGTERM");
          } catch {
            /* gone */
          }
          const deadline = Date.now() + 15_000;
          while (common.pidAlive(n.pid) && Date.now() < deadline) await common.sleep(100);
        }),
      );
      teardownSync(res);
    })();
    return stopping;
  };

  try {
    // the bridge is the lock
    const br = runSync("ip", ["link", "add", "name", BRIDGE, "type", "bridge"]);
    if (br.code !== 0)
      throw new Error(
        `another test swarm seems to be running (could not create bridge ${BRIDGE}: ${br.stderr.trim()})`,
      );
    res.bridge = true;
    writeState(res);
    must(runSync("ip", ["link", "set", BRIDGE, "up"]), "ip link set bridge up");
    must(
      runSync("iptables", ["-I", ...IPT_RULE.slice(0, 1), "1", ...IPT_RULE.slice(1)]),
      "iptables -I FORWARD",
    );
    res.iptables = true;
    writeState(res);

    for (const [i, spec] of specs.entries()) {
      const n: NodeRes = {
        name: spec.name,
        dir: join(dir, spec.name),
        netns: spec.name,
        veth: `pcswv${i}`,
        cgroupParent: `${SWARM_DIR_PREFIX}${suffix}-${spec.name}`,
      };
      res.nodes.push(n);
      writeState(res);
      await mkdir(n.dir, { recursive: true });
      const ip = `${NET_PREFIX}.${10 + i}`;
      must(runSync("ip", ["netns", "add", n.netns]), `ip netns add ${n.netns}`);
      must(
        runSync("ip", ["link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns]),
        `veth for ${n.name}`,
      );
      must(runSync("ip", ["link", "set", n.veth, "master", BRIDGE, "up"]), `attach ${n.veth}`);
      const inNs = (args: string[], what: string) => must(runSync("ip", ["-n", n.netns, ...args]), what);
      inNs(["link", "set", "lo", "up"], "lo up");
      inNs(["addr", "add", `${ip}/24`, "dev", "eth0"], "addr");
      inNs(["link", "set", "eth0", "up"], "eth0 up");
    }

    const tDaemons = Date.now();
    const started = await Promise.all(res.nodes.map((n, i) => startNodeDaemon(n, i, startTimeoutMs)));
    timings.daemons = Date.now() - tDaemons;
    for (const [i, n] of res.nodes.entries()) {
      const s = started[i] as { pid: number; socketPath: string; logPath: string };
      const spec = specs[i] as { name: string; role: "manager" | "worker" };
      nodes.push({
        name: n.name,
        role: spec.role,
        ip: `${NET_PREFIX}.${10 + i}`,
        netns: n.netns,
        socketPath: s.socketPath,
        host: `unix://${s.socketPath}`,
        dir: n.dir,
        logPath: s.logPath,
        pid: s.pid,
        nodeId: "",
      });
    }

    const tSwarm = Date.now();
    const first = nodes[0] as SwarmNode;
    const wantSwarm = opts.swarm !== false;
    if (wantSwarm) {
      const init = await runDocker(
        first.host,
        [
          "swarm",
          "init",
          `--advertise-addr=${first.ip}`,
          `--listen-addr=${first.ip}:2377`,
          `--default-addr-pool=${ADDR_POOL}`,
          "--default-addr-pool-mask-length=24",
        ],
        { timeoutMs: 60_000 },
      );
      must(init, `swarm init on ${first.name}`);
      const token = async (role: string) => {
        const r = await runDocker(first.host, ["swarm", "join-token", "-q", role]);
        must(r, `join-token ${role}`);
        return r.stdout.trim();
      };
      const tokens = { manager: await token("manager"), worker: await token("worker") };
      for (const n of nodes.slice(1)) {
        const j = await runDocker(
          n.host,
          [
            "swarm",
            "join",
            `--token=${tokens[n.role]}`,
            `--advertise-addr=${n.ip}`,
            `--listen-addr=${n.ip}:2377`,
            `${first.ip}:2377`,
          ],
          { timeoutMs: 60_000 },
        );
        must(j, `swarm join of ${n.name}`);
      }
      await waitFor("all nodes Ready", 60_000, async () => {
        const r = await runDocker(first.host, [
          "node",
          "ls",
          "--format",
          "{{.ID}} {{.Hostname}} {{.Status}}",
        ]);
        if (r.code !== 0) return undefined;
        const rows = r.stdout
          .trim()
          .split("\n")
          .map((l) => l.split(" "));
        if (rows.length !== nodes.length || rows.some((row) => row[2] !== "Ready")) return undefined;
        for (const row of rows) {
          const n = nodes.find((x) => x.name === row[1]);
          if (n) n.nodeId = row[0] ?? "";
        }
        return nodes.every((n) => n.nodeId) ? true : undefined;
      });
    }
    timings.swarm = Date.now() - tSwarm;
    timings.total = Date.now() - t0;

    const cluster: SwarmCluster = {
      dir,
      nodes,
      manager: first,
      managers: () => nodes.filter((n) => n.role === "manager"),
      workers: () => nodes.filter((n) => n.role === "worker"),
      socketTemplate: join(dir, "{{.Node.Hostname}}", "docker.sock"),
      node(name) {
        const n = nodes.find((x) => x.name === name);
        if (!n) throw new Error(`no node ${name}`);
        return n;
      },
      async promote(name, timeoutMs = 60_000) {
        const n = cluster.node(name);
        must(await runDocker(first.host, ["node", "promote", n.nodeId]), `node promote ${name}`);
        await waitFor(`${name} to be a reachable manager`, timeoutMs, async () => {
          const r = await runDocker(first.host, [
            "node",
            "inspect",
            n.nodeId,
            "--format",
            "{{.ManagerStatus.Reachability}}",
          ]);
          const i = await runDocker(n.host, ["info", "--format", "{{.Swarm.ControlAvailable}}"]);
          return r.stdout.trim() === "reachable" && i.stdout.trim() === "true" ? true : undefined;
        });
        n.role = "manager";
      },
      stop,
      timings,
    };
    return cluster;
  } catch (e) {
    const logs = nodes.map((n) => `--- ${n.name} ${n.logPath}\n${common.tail(n.logPath, 15)}`).join("\n");
    await stop().catch(() => {});
    teardownSync(res);
    if (e instanceof Error && logs) e.message += `\n${logs}`;
    throw e;
  }
}
