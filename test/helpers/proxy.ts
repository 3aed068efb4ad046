/** Starts portcullis for a test: in-process (fast, logs captured) or as the real CLI process. */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { serve } from "../../src/cli/serve.js";
import { loadConfig } from "../../src/config/env.js";
import { createLogger } from "../../src/observe/logger.js";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const CLI = join(REPO_ROOT, "dist", "src", "cli", "main.js");

export interface TestProxy {
  /** `tcp://127.0.0.1:PORT`, for `docker -H`. */
  readonly host: string;
  readonly port: number;
  /** JSON log records written so far. */
  readonly logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** An in-process proxy on a free loopback port in front of `socketPath`, configured by `env`. */
export async function startProxy(socketPath: string, env: Record<string, string> = {}): Promise<TestProxy> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const config = loadConfig({
    PORTCULLIS_LISTEN: "tcp://127.0.0.1:0",
    SOCKET_PATH: socketPath,
    LOG_LEVEL: "debug",
    ...env,
  });
  const proxy = await serve(config, createLogger(config.logLevel, sink));
  const address = proxy.addresses[0] as string;
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  return { host: `tcp://127.0.0.1:${port}`, port, logs, stop: () => proxy.close(200) };
}

export interface CliProxy {
  readonly child: ChildProcess;
  readonly output: () => string;
  /** Resolves with the exit code and signal. */
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  stop(): Promise<void>;
}

/** The real `portcullis` process; resolves once it logged its start-up line (or exited). */
export async function startCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 10_000,
): Promise<CliProxy> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (c) => {
    output += c;
  });
  child.stderr?.on("data", (c) => {
    output += c;
  });
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const started = new Promise<void>((resolve) => {
    const check = () => {
      if (output.includes("portcullis listening on")) resolve();
    };
    child.stdout?.on("data", check);
    exited.then(() => resolve());
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([started, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
  return {
    child,
    output: () => output,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

export interface PolicyTestProxy {
  /** What serve() returned: addresses, reload(), policy(), close(). */
  readonly serving: Awaited<ReturnType<typeof serve>>;
  /** Bound address of the listener with this name, without the name: `tcp://127.0.0.1:PORT`, `tls://...`, `unix:///...`. */
  address(listener: string): string;
  /** The bound TCP port of the listener with this name. */
  port(listener: string): number;
  /** JSON log records written so far. */
  readonly logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

/**
 * An in-process proxy configured by the policy file `configPath` (its listeners included), in front
 * of `socketPath`. `env` is all the environment the policy sees (token variables): nothing is taken
 * from process.env.
 */
export async function startPolicyProxy(
  configPath: string,
  socketPath: string,
  env: Record<string, string> = {},
): Promise<PolicyTestProxy> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const fullEnv = { SOCKET_PATH: socketPath, LOG_LEVEL: "debug", ...env };
  const config = loadConfig(fullEnv, { config: configPath });
  const serving = await serve(config, createLogger(config.logLevel, sink), fullEnv);
  const address = (listener: string) => {
    const found = serving.addresses.find((a) => a.startsWith(`${listener}=`));
    if (found === undefined) throw new Error(`no listener "${listener}" in ${serving.addresses.join(", ")}`);
    return found.slice(listener.length + 1);
  };
  return {
    serving,
    address,
    port: (listener) => {
      const a = address(listener);
      return Number(a.slice(a.lastIndexOf(":") + 1));
    },
    logs,
    stop: () => serving.close(200),
  };
}

/** JSON log records in a CLI process's output (non-JSON lines skipped). */
export function logRecords(output: string): Record<string, unknown>[] {
  const records: Record<string, unknown>[] = [];
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      records.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a line still being written */
    }
  }
  return records;
}
