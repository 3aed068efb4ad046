/**
 * Test helper: portcullis in a Node process of its own, started with `--expose-gc` and built by
 * serve() exactly as `portcullis serve` builds it, so that its file descriptors, sockets, RSS and heap
 * belong to the proxy alone. Leak, back-pressure and soak tests measure it from outside:
 *
 *   const p = await startProxyProcess({ SOCKET_PATH: engine.socketPath, CONTAINERS: "1" });
 *   const before = await p.stats();   // after two full GCs in the proxy process
 *   ...
 *   await p.stop();
 *
 * The same file is the child's entry point: it only serves when forked by startProxyProcess (an IPC
 * channel and PORTCULLIS_PROXY_PROCESS=1), so the test runner, which runs every .js under dist/test,
 * gets a no-op when it loads it.
 */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface ProcStats {
  /** Open file descriptors (/proc/<pid>/fd entries). */
  readonly fds: number;
  /** Of which sockets (TCP and unix, client and daemon side, listeners included). */
  readonly sockets: number;
  /**
   * Of which unix sockets: with TCP listeners and a unix-socket daemon, the connections to the daemon
   * (pooled and tunnels), plus the IPC channel of a forked process.
   */
  readonly unix: number;
  /** Resident set size in bytes. */
  readonly rss: number;
}

export interface HeapStats extends ProcStats {
  /** V8 heap in use after two full GCs. */
  readonly heapUsed: number;
  /** Buffers and other memory outside the V8 heap, after the GCs. */
  readonly external: number;
  readonly arrayBuffers: number;
  /** libuv handles Node still holds (sockets, timers, servers). */
  readonly handles: number;
}

export interface ProxyProcess {
  readonly pid: number;
  readonly port: number;
  /** `tcp://127.0.0.1:PORT`. */
  readonly host: string;
  readonly child: ChildProcess;
  /** The last 256 KiB the process wrote (its JSON log). */
  output(): string;
  /** fds, sockets and RSS read from /proc, without disturbing the process. */
  proc(): ProcStats;
  /** The same plus heap figures, measured inside the process after two full GCs. */
  stats(): Promise<HeapStats>;
  /** Whether the process is still running. */
  alive(): boolean;
  /** SIGKILL (idempotent). */
  stop(): Promise<void>;
}

/** fds, sockets and RSS of any process, from /proc. */
export function procStats(pid: number): ProcStats {
  let fds = 0;
  let sockets = 0;
  let unix = 0;
  const unixInodes = new Set<string>();
  for (const line of readFileSync(`/proc/${pid}/net/unix`, "utf8").split("\n").slice(1)) {
    const inode = line.trim().split(/\s+/)[6];
    if (inode) unixInodes.add(inode);
  }
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    fds++;
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) {
        sockets++;
        if (unixInodes.has(m[1] as string)) unix++;
      }
    } catch {
      /* closed meanwhile */
    }
  }
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { fds, sockets, unix, rss: rssKb * 1024 };
}

const ENTRY = fileURLToPath(import.meta.url);
const KEEP_OUTPUT = 256 * 1024;

/** Forks the proxy in front of the daemon named by `env` (SOCKET_PATH or DOCKER_HOST) on a free loopback port. */
export async function startProxyProcess(
  env: Record<string, string>,
  timeoutMs = 15_000,
): Promise<ProxyProcess> {
  const child = fork(ENTRY, [], {
    execArgv: ["--expose-gc"],
    env: {
      PATH: process.env.PATH ?? "",
      PORTCULLIS_PROXY_PROCESS: "1",
      PORTCULLIS_LISTEN: "tcp://127.0.0.1:0",
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let out = "";
  const keep = (c: Buffer) => {
    out += c.toString("utf8");
    if (out.length > KEEP_OUTPUT) out = out.slice(-KEEP_OUTPUT);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = once(child, "exit");
  let seq = 0;
  const pending = new Map<number, (s: HeapStats) => void>();
  child.on("message", (m: { kind?: string; id?: number; stats?: HeapStats }) => {
    if (m.kind === "stats" && m.id !== undefined) {
      pending.get(m.id)?.(m.stats as HeapStats);
      pending.delete(m.id);
    }
  });
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`proxy process did not start in ${timeoutMs} ms:\n${out}`)),
      timeoutMs,
    );
    child.on("message", (m: { kind?: string; port?: number }) => {
      if (m.kind === "ready") {
        clearTimeout(timer);
        resolve(m.port as number);
      }
    });
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`proxy process exited during start-up:\n${out}`));
    });
  });
  let port: number;
  try {
    port = await ready;
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const pid = child.pid as number;
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    pid,
    port,
    host: `tcp://127.0.0.1:${port}`,
    child,
    output: () => out,
    proc: () => procStats(pid),
    alive,
    stats() {
      if (!alive()) return Promise.reject(new Error(`proxy process is gone:\n${out.slice(-4000)}`));
      const id = ++seq;
      return new Promise<HeapStats>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error("proxy process did not answer a stats request within 10 s"));
        }, 10_000);
        pending.set(id, (s) => {
          clearTimeout(timer);
          resolve(s);
        });
        child.send({ kind: "stats", id });
      });
    },
    async stop() {
      if (alive()) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

/* ------------------------------------------------------------------ the child */

async function child(): Promise<void> {
  const { serve } = await import("../../src/cli/serve.js");
  const { loadConfig } = await import("../../src/config/env.js");
  const { createLogger } = await import("../../src/observe/logger.js");
  const config = loadConfig(process.env);
  const proxy = await serve(config, createLogger(config.logLevel), process.env);
  const address = proxy.addresses[0] as string;
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on("message", async (m: { kind?: string; id?: number }) => {
    if (m.kind !== "stats") return;
    for (let i = 0; i < 2; i++) {
      gc?.();
      await new Promise((r) => setImmediate(r));
    }
    const mem = process.memoryUsage();
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    process.send?.({
      kind: "stats",
      id: m.id,
      stats: {
        ...procStats(process.pid),
        heapUsed: mem.heapUsed,
        external: mem.external,
        arrayBuffers: mem.arrayBuffers,
        handles,
      },
    });
  });
  // The parent going away must not leave a proxy behind.
  process.on("disconnect", () => process.exit(0));
  process.send?.({ kind: "ready", port: Number(address.slice(address.lastIndexOf(":") + 1)) });
}

if (process.env.PORTCULLIS_PROXY_PROCESS === "1" && process.send !== undefined) {
  child().catch((error: unknown) => {
    process.stderr.write(`proxy process failed: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
}
