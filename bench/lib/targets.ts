/**
 * The three things measured side by side, all on loopback TCP:
 *   direct     - dockerd's own plain-HTTP TCP listener (the baseline: no proxy at all)
 *   haproxy    - HAProxy with the verbatim Tecnativa config (bench/anchor), same toggles
 *   portcullis - the real CLI (`node dist/src/cli/main.js`) as a separate process
 * Every process started here is recorded and stopped by stopAll(), also on failure and Ctrl-C.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { childPids, DIST, freePort, REPO_ROOT, sleep, waitForAccept } from "./util.js";

export type TargetName = "direct" | "haproxy" | "portcullis";
export const TARGETS: readonly TargetName[] = ["direct", "haproxy", "portcullis"];

export interface Target {
  readonly name: TargetName;
  readonly host: string;
  readonly port: number;
  /** The proxy's processes (for RSS/CPU); empty for direct (the daemon is not a proxy). */
  pids(): number[];
  /** The proxy's log file, if any. */
  readonly logPath?: string;
  stop(): Promise<void>;
}

/** The portcullis CLI under test; PORTCULLIS_BENCH_CLI points at another build (A/B of a change). */
export const CLI = process.env.PORTCULLIS_BENCH_CLI ?? join(DIST, "src", "cli", "main.js");
const RENDER = join(REPO_ROOT, "bench", "anchor", "render.sh");

const running = new Set<ChildProcess>();

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number, extra: number[] = []) {
  if (alive(child)) {
    child.kill(signal);
    for (const p of extra) {
      try {
        process.kill(p, signal);
      } catch {
        /* gone */
      }
    }
    const deadline = Date.now() + graceMs;
    while (alive(child) && Date.now() < deadline) await sleep(20);
    if (alive(child)) child.kill("SIGKILL");
    while (alive(child) && Date.now() < deadline + 2_000) await sleep(20);
  }
  for (const p of extra) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  running.delete(child);
}

/** Synchronous last resort (process 'exit' / signals): SIGKILL whatever is still running. */
export function killAllSync(): void {
  for (const child of running) {
    if (child.pid === undefined) continue;
    for (const p of childPids(child.pid)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    try {
      child.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
  running.clear();
}

export function directTarget(tcpAddress: string): Target {
  const i = tcpAddress.lastIndexOf(":");
  return {
    name: "direct",
    host: tcpAddress.slice(0, i),
    port: Number(tcpAddress.slice(i + 1)),
    pids: () => [],
    stop: async () => {},
  };
}

export interface ProxyOptions {
  socketPath: string;
  /** Tecnativa-style toggles, given identically to HAProxy and portcullis. */
  toggles: Record<string, string>;
  logLevel: string;
  /** Where config and logs go. */
  dir: string;
}

export interface StartedTarget extends Target {
  /** ms from spawn to the first accepted TCP connection. */
  readonly startMs: number;
}

function openLog(path: string): number {
  return openSync(path, "a");
}

export async function startHaproxy(opts: ProxyOptions, tag = "haproxy"): Promise<StartedTarget> {
  const port = await freePort();
  const rundir = join(opts.dir, tag);
  const render = spawnSync("sh", [RENDER, "tecnativa"], {
    encoding: "utf8",
    env: {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      ...opts.toggles,
      DOCKER_SOCK: opts.socketPath,
      PORT: String(port),
      RUNDIR: rundir,
      LOG_LEVEL: opts.logLevel,
    },
    timeout: 10_000,
  });
  if (render.status !== 0) throw new Error(`render.sh failed: ${render.stderr}`);
  const cfg = render.stdout.trim();
  const logPath = join(rundir, "haproxy.log");
  const fd = openLog(logPath);
  const t0 = performance.now();
  let child: ChildProcess;
  try {
    child = spawn("haproxy", ["-W", "-db", "-f", cfg], { stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  running.add(child);
  const ok = await waitForAccept("127.0.0.1", port, 10_000);
  const startMs = performance.now() - t0;
  if (!ok || !alive(child)) {
    await stopChild(child, "SIGKILL", 1_000);
    throw new Error(`haproxy did not start; ${logPath}:\n${tail(logPath)}`);
  }
  const master = child.pid as number;
  // -W: a master and one worker; the worker does the work, report both
  let workers: number[] = [];
  for (let i = 0; i < 50 && workers.length === 0; i++) {
    workers = childPids(master);
    if (workers.length === 0) await sleep(20);
  }
  return {
    name: "haproxy",
    host: "127.0.0.1",
    port,
    startMs,
    logPath,
    pids: () => [master, ...childPids(master)],
    // SIGTERM is HAProxy's hard stop (SIGUSR1 would wait for open /events streams forever)
    stop: () => stopChild(child, "SIGTERM", 3_000, childPids(master)),
  };
}

export async function startPortcullis(
  opts: ProxyOptions,
  tag = "portcullis",
  nodeArgs: string[] = [],
): Promise<StartedTarget> {
  const port = await freePort();
  const logPath = join(opts.dir, `${tag}.log`);
  const fd = openLog(logPath);
  const t0 = performance.now();
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...nodeArgs, CLI], {
      stdio: ["ignore", fd, fd],
      env: {
        PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
        ...opts.toggles,
        SOCKET_PATH: opts.socketPath,
        PORTCULLIS_LISTEN: `tcp://127.0.0.1:${port}`,
        LOG_LEVEL: opts.logLevel,
      },
    });
  } finally {
    closeSync(fd);
  }
  running.add(child);
  const ok = await waitForAccept("127.0.0.1", port, 10_000);
  const startMs = performance.now() - t0;
  if (!ok || !alive(child)) {
    await stopChild(child, "SIGKILL", 1_000);
    throw new Error(`portcullis did not start; ${logPath}:\n${tail(logPath)}`);
  }
  const pid = child.pid as number;
  return {
    name: "portcullis",
    host: "127.0.0.1",
    port,
    startMs,
    logPath,
    pids: () => (alive(child) ? [pid] : []),
    // SIGTERM: portcullis' graceful stop (also what lets --cpu-prof write its profile)
    stop: () => stopChild(child, "SIGTERM", 5_000),
  };
}

function tail(path: string, lines = 30): string {
  if (!existsSync(path)) return "(no log)";
  return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
}
