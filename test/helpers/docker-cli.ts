/**
 * Test helper: run the real `docker` CLI against a given engine address, with
 * an isolated environment (no user config, no inherited DOCKER_HOST/CONTEXT)
 * and a bounded run time.
 *
 *   const r = await runDocker(engine.host, ["run", "--rm", engine.image, "echo", "hi"]);
 *   assert.equal(r.code, 0, r.stderr);
 *
 *   const ev = startDocker(engine.host, ["events", "--format", "{{.Action}}"]);
 *   await ev.waitForOutput(/start/);
 *   await ev.kill();
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface DockerRunOptions {
  /** Written to the CLI's stdin, which is then closed. Without it stdin is empty. */
  input?: string | Buffer;
  /** Default 30 s. On expiry the CLI is SIGKILLed and the result says `timedOut: true`. */
  timeoutMs?: number;
  /** Extra environment variables, applied over the isolated environment. */
  env?: Record<string, string>;
}

export interface DockerResult {
  /** Exit code; null when the CLI was killed by a signal (e.g. on timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the timeout expired and the CLI was killed. */
  timedOut: boolean;
}

const DEFAULT_TIMEOUT_MS = 30_000;

let configDir: string | undefined;

/** An empty DOCKER_CONFIG directory for this process, removed at exit. */
function emptyDockerConfig(): string {
  if (configDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-docker-config-"));
    configDir = dir;
    process.once("exit", () => {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    });
  }
  return configDir;
}

/** The environment the CLI runs with: the inherited one minus anything that could redirect it. */
export function dockerEnv(extra?: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of [
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS",
    "DOCKER_API_VERSION",
    "DOCKER_DEFAULT_PLATFORM",
    "DOCKER_CONTENT_TRUST",
  ]) {
    delete env[k];
  }
  env.DOCKER_CONFIG = emptyDockerConfig();
  env.DOCKER_CLI_HINTS = "false";
  env.DOCKER_CLI_EXPERIMENTAL = "disabled";
  return { ...env, ...(extra ?? {}) };
}

function spawnDocker(host: string, args: string[], env?: Record<string, string>): ChildProcess {
  return spawn("docker", ["-H", host, ...args], {
    env: dockerEnv(env),
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Runs `docker -H host ...args` to completion (or timeout). Never rejects for a non-zero exit. */
export function runDocker(host: string, args: string[], opts: DockerRunOptions = {}): Promise<DockerResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve) => {
    const child = spawnDocker(host, args, opts.env);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    child.stdin?.on("error", () => {
      /* EPIPE when the CLI exits before reading its input */
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const finish = (code: number | null, signal: NodeJS.Signals | null, extraErr = ""): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString("utf8") + extraErr;
      if (timedOut) stderr += `\n[runDocker] timed out after ${timeoutMs} ms: docker ${args.join(" ")}\n`;
      resolve({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr, timedOut });
    };
    child.on("error", (e) => finish(null, null, `\n[runDocker] could not run docker: ${e.message}\n`));
    child.on("close", (code, signal) => finish(code, signal));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export interface DockerProcess {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with stdout once it matches `pattern`; rejects on timeout (default 10 s) or exit. */
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 2 s); resolves once it has exited. Idempotent. */
  kill(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts a long-running `docker -H host ...args` (e.g. `events`, `logs -f`, `attach`).
 * The caller must `kill()` it (e.g. in an `after` hook); it is also SIGKILLed at process exit.
 */
export function startDocker(
  host: string,
  args: string[],
  opts: { env?: Record<string, string>; input?: string | Buffer } = {},
): DockerProcess {
  const child = spawnDocker(host, args, opts.env);
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (s: string) => {
    out += s;
    notify();
  });
  child.stderr?.on("data", (s: string) => {
    err += s;
  });
  child.stdin?.on("error", () => {});
  if (opts.input !== undefined) child.stdin?.end(opts.input);

  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("error", (e) => {
      err += `\n[startDocker] could not run docker: ${e.message}\n`;
      done = true;
      notify();
      resolve({ code: null, signal: null });
    });
    child.on("close", (code, signal) => {
      done = true;
      notify();
      resolve({ code, signal });
    });
  });
  const onExit = (): void => {
    if (!done) child.kill("SIGKILL");
  };
  process.once("exit", onExit);
  void exited.then(() => process.removeListener("exit", onExit));

  const matches = (p: RegExp | string): boolean => (typeof p === "string" ? out.includes(p) : p.test(out));

  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForOutput(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        if (matches(pattern)) {
          resolve(out);
          return;
        }
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${String(pattern)} from docker ${args.join(" ")}\nstdout: ${out}\nstderr: ${err}`,
            ),
          );
        }, timeoutMs);
        const check = (): void => {
          if (matches(pattern)) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve(out);
          } else if (done) {
            clearTimeout(timer);
            listeners.delete(check);
            reject(
              new Error(
                `docker ${args.join(" ")} exited before printing ${String(pattern)}\nstdout: ${out}\nstderr: ${err}`,
              ),
            );
          }
        };
        listeners.add(check);
      });
    },
    async kill(graceMs = 2_000) {
      if (!done) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => {
          if (!done) child.kill("SIGKILL");
        }, graceMs);
        const r = await exited;
        clearTimeout(timer);
        return r;
      }
      return exited;
    },
  };
}
