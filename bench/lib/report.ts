/** Results: per-metric samples for each target, medians, ratios, the targets, table and JSON. */

import type { TargetName } from "./targets.js";
import { fmt, median } from "./util.js";

export interface Metric {
  /** Scenario row label, e.g. "GET /_ping, keep-alive, 16 conns". */
  scenario: string;
  /** Stable key, e.g. "small.ping.c16.rps". */
  key: string;
  metric: string;
  unit: string;
  better: "higher" | "lower";
  samples: Partial<Record<TargetName, number[]>>;
  note?: string;
}

export interface MetricSummary extends Metric {
  median: Partial<Record<TargetName, number>>;
  /** portcullis / HAProxy and portcullis / direct, from the medians of this run. */
  vsHaproxy?: number;
  vsDirect?: number;
}

export interface TargetCheck {
  goal: string;
  measured: string;
  met: boolean | null;
  why?: string;
}

export class Results {
  readonly metrics: Metric[] = [];
  readonly errors: { scenario: string; error: string }[] = [];
  readonly notes: string[] = [];

  metric(m: Omit<Metric, "samples">): Metric {
    let found = this.metrics.find((x) => x.key === m.key);
    if (!found) {
      found = { ...m, samples: {} };
      this.metrics.push(found);
    }
    return found;
  }

  add(m: Omit<Metric, "samples">, target: TargetName, value: number): void {
    const metric = this.metric(m);
    const list = metric.samples[target] ?? [];
    list.push(value);
    metric.samples[target] = list;
  }

  summaries(): MetricSummary[] {
    return this.metrics.map((m) => {
      const med: Partial<Record<TargetName, number>> = {};
      for (const [t, xs] of Object.entries(m.samples) as [TargetName, number[]][]) med[t] = median(xs);
      const p = med.portcullis;
      const s: MetricSummary = { ...m, median: med };
      if (p !== undefined && med.haproxy !== undefined && med.haproxy !== 0) s.vsHaproxy = p / med.haproxy;
      if (p !== undefined && med.direct !== undefined && med.direct !== 0) s.vsDirect = p / med.direct;
      return s;
    });
  }

  get(key: string): MetricSummary | undefined {
    return this.summaries().find((m) => m.key === key);
  }
}

function ratio(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? "-" : `${r.toFixed(2)}x`;
}

export function markdownTable(rows: MetricSummary[]): string {
  const out = [
    "| scenario | metric | direct | HAProxy | portcullis | portcullis/HAProxy | portcullis/direct |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  let last = "";
  for (const r of rows) {
    const label = r.scenario === last ? "" : r.scenario;
    last = r.scenario;
    // latencies to 0.01 ms; CPU times are whole ms (10 ms ticks); everything else to 0.1
    const digits = r.unit !== "ms" ? 1 : r.metric.includes("CPU") ? 0 : r.metric === "start-up" ? 1 : 2;
    out.push(
      `| ${label} | ${r.metric} (${r.unit}) | ${fmt(r.median.direct ?? Number.NaN, digits)} | ${fmt(
        r.median.haproxy ?? Number.NaN,
        digits,
      )} | ${fmt(r.median.portcullis ?? Number.NaN, digits)} | ${ratio(r.vsHaproxy)} | ${ratio(r.vsDirect)} |`,
    );
  }
  return out.join("\n");
}

export function targetsTable(checks: TargetCheck[]): string {
  const out = ["| target | measured | met |", "| --- | --- | :---: |"];
  for (const c of checks)
    out.push(`| ${c.goal} | ${c.measured} | ${c.met === null ? "n/a" : c.met ? "yes" : "**no**"} |`);
  return out.join("\n");
}

/** The targets, evaluated on this run's medians. */
export function evaluateTargets(res: Results): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ratioCheck = (goal: string, key: string, field: "vsHaproxy" | "vsDirect", min: number) => {
    const m = res.get(key);
    const r = m?.[field];
    checks.push({
      goal,
      measured: r === undefined ? "not measured" : `${r.toFixed(2)}x`,
      met: r === undefined ? null : r >= min,
    });
  };
  for (const c of [16, 128]) {
    ratioCheck(
      `containers/json req/s >= 1.0x HAProxy (${c} conns)`,
      `small.list.c${c}.rps`,
      "vsHaproxy",
      1.0,
    );
    ratioCheck(
      `containers/{id}/json req/s >= 1.0x HAProxy (${c} conns)`,
      `small.inspect.c${c}.rps`,
      "vsHaproxy",
      1.0,
    );
  }
  for (const c of [16, 128])
    ratioCheck(`/_ping req/s >= 0.7x HAProxy (${c} conns)`, `small.ping.c${c}.rps`, "vsHaproxy", 0.7);
  {
    const m = res.get("small.ping.c16.p99");
    const p = m?.median.portcullis;
    const h = m?.median.haproxy;
    checks.push({
      goal: "/_ping p99 <= HAProxy p99 + 1 ms (16 conns)",
      measured:
        p === undefined || h === undefined ? "not measured" : `${p.toFixed(2)} ms vs ${h.toFixed(2)} + 1 ms`,
      met: p === undefined || h === undefined ? null : p <= h + 1,
    });
  }
  ratioCheck("bulk image get MB/s >= 0.9x direct", "bulk.get.mbps", "vsDirect", 0.9);
  ratioCheck("bulk image load MB/s >= 0.9x direct", "bulk.load.mbps", "vsDirect", 0.9);
  ratioCheck("hijack exec MB/s >= 0.9x direct", "hijack.exec.mbps", "vsDirect", 0.9);
  ratioCheck("hijack attach MB/s >= 0.9x direct", "hijack.attach.mbps", "vsDirect", 0.9);
  {
    const d = res.get("events.delivered");
    const n = res.get("events.subscribers");
    const got = d?.samples.portcullis ?? [];
    const want = n?.samples.portcullis ?? [];
    const all = got.length > 0 && got.every((x, i) => x === want[i]);
    checks.push({
      goal: "1,000 event subscribers: every subscriber gets every event",
      measured: got.length
        ? `${Math.min(...got)} of ${Math.max(...want)} subscribers, every round`
        : "not measured",
      met: got.length ? all : null,
    });
    const rss = res.get("events.rss")?.median.portcullis;
    checks.push({
      goal: "RSS with 1,000 event subscribers <= 150 MB",
      measured: rss === undefined ? "not measured" : `${rss.toFixed(1)} MB`,
      met: rss === undefined ? null : rss <= 150,
    });
  }
  {
    const rss = res.get("memory.idle")?.median.portcullis;
    checks.push({
      goal: "idle RSS <= 60 MB",
      measured: rss === undefined ? "not measured" : `${rss.toFixed(1)} MB`,
      met: rss === undefined ? null : rss <= 60,
    });
    const s = res.get("startup.accept")?.median.portcullis;
    checks.push({
      goal: "start-up to first accepted connection <= 300 ms",
      measured: s === undefined ? "not measured" : `${s.toFixed(0)} ms`,
      met: s === undefined ? null : s <= 300,
    });
  }
  return checks;
}
