/**
 * Test helper internals shared by dockerd.ts (one private engine) and swarm-cluster.ts (a multi-node
 * swarm of engines in network namespaces): finding and killing a daemon's processes, unmounting,
 * removing cgroups and dirs, launching dockerd with a bounded wait for `/_ping` and a fallback
 * storage driver, and the exit/signal safety net. Not for tests: use those two modules.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import { constants as osConstants } from "node:os";
import { join } from "node:path";
import { runDocker } from "./docker-cli.js";

/* ------------------------------------------------------------------ small utilities */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function runSync(
  cmd: string,
  args: string[],
  timeoutMs = 10_000,
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs });
  return {
    code: r.status,
    stdout: r.stdout ?? "",
    stderr: (r.stderr ?? "") + (r.error ? String(r.error) : ""),
  };
}

export function onPath(cmd: string): boolean {
  for (const d of (process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(
    ":",
  )) {
    if (!d) continue;
    try {
      if (statSync(join(d, cmd)).isFile()) return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

/** The last `lines` lines of a log file, or "(no log)". */
export function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export function ping(
  target: { socketPath: string } | { host: string; port: number },
  timeoutMs = 1_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ ...target, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
      res.on("error", () => resolve(false));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/* ------------------------------------------------------------------ teardown primitives */

/** Pids whose command line mentions `dir` (dockerd, its containerd, the shims). Never this process. */
export function pidsMentioning(dir: string): number[] {
  const pids: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return pids;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
      if (cmd.includes(dir)) pids.push(pid);
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** SIGKILLs every pid, ignoring those already gone. */
export function killPids(pids: Iterable<number>): void {
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

/** Up to `rounds` times: SIGKILL what `collect()` finds (never this process), then pause `pause` seconds. */
export function killUntilGone(collect: () => Iterable<number>, rounds: number, pause: string): void {
  for (let round = 0; round < rounds; round++) {
    const pids = new Set<number>(collect());
    pids.delete(process.pid);
    if (pids.size === 0) break;
    killPids(pids);
    spawnSync("sleep", [pause]);
  }
}

/** Directories of cgroup `name` (a --cgroup-parent) in every v1 hierarchy and in v2. */
export function cgroupDirs(name: string): string[] {
  const dirs: string[] = [];
  const root = "/sys/fs/cgroup";
  if (existsSync(join(root, name))) dirs.push(join(root, name));
  let entries: string[] = [];
  try {
    entries = readdirSync(root);
  } catch {
    return dirs;
  }
  for (const e of entries) {
    const d = join(root, e, name);
    try {
      if (statSync(join(root, e)).isDirectory() && existsSync(d) && !dirs.includes(d)) dirs.push(d);
    } catch {
      /* ignore */
    }
  }
  return dirs;
}

/** All pids in a cgroup subtree. */
export function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string): void => {
    try {
      for (const l of readFileSync(join(d, "cgroup.procs"), "utf8").split("\n"))
        if (l.trim()) pids.push(Number(l));
    } catch {
      /* ignore */
    }
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      /* ignore */
    }
  };
  walk(dir);
  return pids;
}

/** rmdir a cgroup subtree, deepest first (cgroup dirs can't be rm -r'ed). */
export function removeCgroupTree(dir: string): void {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
    rmdirSync(dir);
  } catch {
    /* best effort */
  }
}

/** Mount points at or under `dir`, deepest first, from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  let text = "";
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const unescapeOctal = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  const points = new Set<string>();
  for (const line of text.split("\n")) {
    const mp = line.split(" ")[4];
    if (!mp) continue;
    const p = unescapeOctal(mp);
    if (p === dir || p.startsWith(`${dir}/`)) points.add(p);
  }
  return [...points].sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything at or under `dir`. */
export function unmountUnder(dir: string, timeoutMs?: number): void {
  for (const mp of mountsUnder(dir)) runSync("umount", ["-l", mp], timeoutMs);
}

/** Removes what a daemon keeps in its `dir` (data, exec, pidfile, socket) but not its log. */
export function removeDaemonState(dir: string): void {
  for (const sub of ["data", "exec", "pid", "docker.sock"])
    rmSync(join(dir, sub), { recursive: true, force: true });
}

/** rm -r `dir`; if a mount got in the way, unmount again and retry once. Best effort. */
export function removeDirSync(dir: string, timeoutMs?: number): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    unmountUnder(dir, timeoutMs);
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

/**
 * An idempotent installer of the exit net: on process exit and on SIGINT/SIGTERM/SIGHUP, `teardown`
 * runs for everything still in `live`. After a signal the process exits as the default action
 * would, unless someone else handles that signal.
 */
export function exitSafetyNet<T>(live: Set<T>, teardown: (res: T) => void): () => void {
  let installed = false;
  return () => {
    if (installed) return;
    installed = true;
    const killAll = (): void => {
      for (const res of [...live]) {
        try {
          teardown(res);
        } catch {
          /* keep going */
        }
      }
    };
    process.on("exit", killAll);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const handler = (): void => {
        killAll();
        process.removeListener(sig, handler);
        if (process.listenerCount(sig) === 0) process.exit(128 + (osConstants.signals[sig] ?? 0));
      };
      process.on(sig, handler);
    }
  };
}

/* ------------------------------------------------------------------ launch */

/**
 * Writes an empty `<dir>/daemon.json` and returns the dockerd arguments every test daemon shares
 * (config, socket, data/exec root, pidfile, cgroupfs under `cgroupParent`), with `hosts` after the
 * socket and `network` after the pidfile.
 */
export async function daemonArgs(
  dir: string,
  socketPath: string,
  cgroupParent: string,
  hosts: string[],
  network: string[],
): Promise<string[]> {
  await writeFile(join(dir, "daemon.json"), "{}\n");
  return [
    `--config-file=${join(dir, "daemon.json")}`, // never read /etc/docker/daemon.json
    `--host=unix://${socketPath}`,
    ...hosts,
    `--data-root=${join(dir, "data")}`,
    `--exec-root=${join(dir, "exec")}`,
    `--pidfile=${join(dir, "pid")}`,
    ...network,
    "--exec-opt=native.cgroupdriver=cgroupfs",
    `--cgroup-parent=/${cgroupParent}`,
    "--log-level=warn",
  ];
}

export interface DaemonAttempt {
  child: ChildProcess;
  ok: boolean;
  exited: boolean;
}

/**
 * Spawns `cmd args` detached (own process group) and unref'd, stdout and stderr appended to
 * `logPath`; `onSpawn` gets the child at once. Resolves when `ready()` says yes, the child exits, or
 * `timeoutMs` passes.
 */
export async function spawnDaemon(
  cmd: string,
  args: string[],
  logPath: string,
  onSpawn: (child: ChildProcess) => void,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<DaemonAttempt> {
  const fd = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      stdio: ["ignore", fd, fd],
      detached: true, // own process group: a terminal ^C reaches us, and we stop it in order
    });
  } finally {
    closeSync(fd);
  }
  onSpawn(child);
  child.unref(); // a forgotten stop() must not keep the test process alive; the exit net kills it
  const attempt: DaemonAttempt = { child, ok: false, exited: false };
  child.once("exit", () => {
    attempt.exited = true;
  });
  child.once("error", () => {
    attempt.exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !attempt.exited) {
    if (await ready()) {
      attempt.ok = true;
      return attempt;
    }
    await sleep(100);
  }
  return attempt;
}

/** The storage drivers to try, in order: $PORTCULLIS_DOCKERD_STORAGE_DRIVER alone, else overlay2 then vfs. */
export function storageDrivers(): string[] {
  const forced = process.env.PORTCULLIS_DOCKERD_STORAGE_DRIVER;
  return forced ? [forced] : ["overlay2", "vfs"];
}

/**
 * Runs `launch(driver)` for each storage driver until one answers. After a failed attempt,
 * `cleanUp(attempt)` removes what it left and a line is appended to `logPath`; when the last driver
 * fails too this throws "<label> (<driver>) <why>; tail of <logPath>: ...".
 */
export async function launchWithStorageDrivers(
  launch: (driver: string) => Promise<DaemonAttempt>,
  cleanUp: (attempt: DaemonAttempt) => void | Promise<void>,
  o: { label: string; logPath: string; timeoutMs: number; tailLines: number },
): Promise<{ driver: string; attempt: DaemonAttempt }> {
  const drivers = storageDrivers();
  for (const driver of drivers) {
    const attempt = await launch(driver);
    if (attempt.ok) return { driver, attempt };
    const why = attempt.exited ? "exited" : `did not answer /_ping within ${o.timeoutMs} ms`;
    // tear this attempt down before trying the next driver
    await cleanUp(attempt);
    const logTail = tail(o.logPath, o.tailLines);
    if (driver === drivers[drivers.length - 1])
      throw new Error(`${o.label} (${driver}) ${why}; tail of ${o.logPath}:\n${logTail}`);
    await writeFile(o.logPath, `--- ${driver} failed (${why}); retrying with the next storage driver\n`, {
      flag: "a",
    });
  }
  throw new Error("no storage driver to try");
}

/** `docker rm -f -v` every container of the engine at `host` (bounded). */
export async function removeAllContainers(host: string): Promise<void> {
  const ps = await runDocker(host, ["ps", "-aq"], { timeoutMs: 10_000 });
  const ids = ps.stdout.split(/\s+/).filter(Boolean);
  if (ids.length) await runDocker(host, ["rm", "-f", "-v", ...ids], { timeoutMs: 30_000 });
}
