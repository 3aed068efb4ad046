/** Summarizes V8 .cpuprofile files (from `node --cpu-prof`): self time by function and by area. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Not counting (idle). */
  busyMs: number;
  areas: { area: string; ms: number; pct: number }[];
  functions: { fn: string; where: string; ms: number; pct: number }[];
}

function area(url: string, fn: string): string {
  if (url === "") return fn || "(anonymous)";
  if (url.includes("/dist/src/")) return `portcullis ${url.slice(url.indexOf("/dist/src/") + 10)}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1] as string;
  if (url.startsWith("node:")) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node ${m?.[1] ?? url}`;
  }
  return "other";
}

export function summarizeProfile(path: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfById = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    selfById.set(id, (selfById.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const fns = new Map<string, { fn: string; where: string; ms: number }>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, ms] of selfById) {
    const n = byId.get(id);
    if (!n) continue;
    total += ms;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === "(idle)") {
      idle += ms;
      continue;
    }
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + ms);
    const short = url.replace(/^.*\/(dist|node_modules)\//, "$1/").replace(/^file:\/\//, "");
    const where = url ? `${short}:${lineNumber + 1}` : "";
    const key = `${functionName}@${where}`;
    const f = fns.get(key) ?? { fn: functionName || "(anonymous)", where, ms: 0 };
    f.ms += ms;
    fns.set(key, f);
  }
  const busy = total - idle;
  const pct = (ms: number) => (busy > 0 ? (100 * ms) / busy : 0);
  return {
    file: path,
    totalMs: total,
    busyMs: busy,
    areas: [...areas.entries()]
      .map(([a, ms]) => ({ area: a, ms, pct: pct(ms) }))
      .sort((x, y) => y.ms - x.ms)
      .slice(0, top),
    functions: [...fns.values()]
      .map((f) => ({ ...f, pct: pct(f.ms) }))
      .sort((x, y) => y.ms - x.ms)
      .slice(0, top),
  };
}

export function summarizeDir(dir: string, top = 25): ProfileSummary[] {
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  } catch {
    return [];
  }
  return files.map((f) => summarizeProfile(join(dir, f), top));
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [
    `profile ${s.file}: ${(s.busyMs / 1000).toFixed(2)} s busy of ${(s.totalMs / 1000).toFixed(2)} s`,
    "  by area (self time):",
    ...s.areas.map(
      (a) => `    ${a.pct.toFixed(1).padStart(5)}%  ${a.ms.toFixed(0).padStart(7)} ms  ${a.area}`,
    ),
    "  top functions (self time):",
    ...s.functions.map(
      (f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.fn}  ${f.where}`,
    ),
  ];
  return lines.join("\n");
}
