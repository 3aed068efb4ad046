/** Runs wrk (HTTP/1.1 load generator, its own process) against a loopback target and parses its summary. */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  /** Latency percentiles in ms. */
  p50: number;
  p99: number;
  /** Socket errors + non-2xx/3xx responses. */
  errors: number;
  non2xx: number;
}

const LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50\\":%d,\\"p99\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

let luaPath: string | undefined;

export interface WrkOptions {
  host: string;
  port: number;
  path: string;
  connections: number;
  durationS: number;
  threads?: number;
  /** Extra request headers, e.g. { Connection: "close" } for connection churn. */
  headers?: Record<string, string>;
  /** Scratch dir for the Lua script. */
  dir: string;
}

export function runWrk(o: WrkOptions): Promise<WrkResult> {
  if (luaPath === undefined) {
    luaPath = join(o.dir, "wrk-summary.lua");
    writeFileSync(luaPath, LUA);
  }
  const threads = Math.min(o.threads ?? 1, o.connections);
  const args = [`-t${threads}`, `-c${o.connections}`, `-d${o.durationS}s`, "--timeout", "10s", "-s", luaPath];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k}: ${v}`);
  args.push(`http://${o.host}:${o.port}${o.path}`);
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b;
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), (o.durationS + 30) * 1000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith("WRKJSON "));
      if (code !== 0 || !line) {
        reject(new Error(`wrk ${args.join(" ")} failed (${code}): ${err}${out}`));
        return;
      }
      const j = JSON.parse(line.slice(8)) as Record<string, number>;
      const durationS = (j.duration_us as number) / 1e6;
      const requests = j.requests as number;
      resolve({
        requests,
        durationS,
        rps: requests / durationS,
        p50: (j.p50 as number) / 1000,
        p99: (j.p99 as number) / 1000,
        errors: (j.connect as number) + (j.read as number) + (j.write as number) + (j.timeout as number),
        non2xx: j.status as number,
      });
    });
  });
}
