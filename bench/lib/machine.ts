/** What the numbers were measured on: printed by every run and stored in the JSON. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

export interface Machine {
  nproc: number;
  cpu: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  dockerd: string;
  haproxy: string;
  wrk: string;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 5_000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0]?.trim() || "unknown";
}

export function machine(): Machine {
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    dockerd: firstLine("dockerd", ["--version"]),
    haproxy: firstLine("haproxy", ["-v"]),
    wrk: firstLine("wrk", ["--version"]).replace(/ Copyright.*$/, ""),
  };
}

export function describeMachine(m: Machine): string {
  return [
    `nproc ${m.nproc} (${m.cpu}), memory ${m.memoryGiB} GiB, ${m.kernel}`,
    `Node ${m.node}; ${m.dockerd}; ${m.haproxy}; ${m.wrk}`,
  ].join("\n");
}

function cpuTicks(): { busy: number; total: number } {
  const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Share (0-100) of all CPUs busy over the next `ms`. Measured before the bench starts anything:
 * other work on the machine competes with all three targets and makes the numbers noisy.
 */
export async function backgroundBusy(ms = 2_000): Promise<number> {
  const a = cpuTicks();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTicks();
  const total = b.total - a.total;
  return total > 0 ? Math.round((100 * (b.busy - a.busy)) / total) : 0;
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}
