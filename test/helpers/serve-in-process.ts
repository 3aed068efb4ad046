/**
 * Test helper: portcullis's serve() in this process, its JSON log lines parsed into `logs`.
 *
 *   const p = await serveInProcess({ SOCKET_PATH: engine.socketPath, CONTAINERS: "1" });
 *   ... p.serving.addresses[0] ... p.logs ...
 *   await p.stop();
 */
import { Writable } from "node:stream";
import { serve } from "../../src/cli/serve.js";
import { type CliOverrides, loadConfig } from "../../src/config/env.js";
import { createLogger } from "../../src/observe/logger.js";

export interface InProcessProxy {
  /** What serve() returned: addresses, adminAddress, reload(), policy(), close(). */
  readonly serving: Awaited<ReturnType<typeof serve>>;
  /** Every log record so far, in order. */
  readonly logs: Record<string, unknown>[];
  /** serving.close(200). */
  stop(): Promise<void>;
}

export async function serveInProcess(
  env: Record<string, string>,
  cli: CliOverrides = {},
): Promise<InProcessProxy> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const config = loadConfig(env, cli);
  const serving = await serve(config, createLogger(config.logLevel, sink), env);
  return { serving, logs, stop: () => serving.close(200) };
}

/** The port of a "host:port" address. */
export const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(":") + 1));
