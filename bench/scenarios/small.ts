/**
 * Small requests with wrk: /_ping (proxy overhead), containers/json and inspect (daemon-bound), over
 * keep-alive at 16 and 128 connections; and connection churn (a new connection per request).
 * Targets run interleaved: direct, HAProxy, portcullis, direct, HAProxy, ... for `rounds` rounds.
 */
import type { Ctx } from "../lib/context.js";
import { cpuMs } from "../lib/util.js";
import { runWrk, type WrkResult } from "../lib/wrk.js";

interface Endpoint {
  key: string;
  label: string;
  path: string;
}

export function endpoints(ctx: Ctx): Endpoint[] {
  const id = ctx.seed.containerIds[ctx.seed.containerIds.length - 1] as string;
  return [
    { key: "ping", label: "GET /_ping", path: "/_ping" },
    { key: "list", label: "GET /v1.41/containers/json?all=1", path: "/v1.41/containers/json?all=1" },
    { key: "inspect", label: "GET /v1.41/containers/{id}/json", path: `/v1.41/containers/${id}/json` },
  ];
}

function check(r: WrkResult, what: string): void {
  if (r.requests === 0) throw new Error(`${what}: no request completed`);
  if (r.non2xx > 0) throw new Error(`${what}: ${r.non2xx} non-2xx/3xx responses`);
}

async function measure(
  ctx: Ctx,
  ep: Endpoint,
  connections: number,
  scenario: string,
  keyPrefix: string,
  headers?: Record<string, string>,
): Promise<void> {
  const { sizes, results } = ctx;
  if (sizes.warmupS > 0) {
    for (const t of ctx.targets)
      await runWrk({
        host: t.host,
        port: t.port,
        path: ep.path,
        connections,
        durationS: sizes.warmupS,
        dir: ctx.dir,
        headers,
      });
  }
  for (let round = 0; round < sizes.rounds; round++) {
    for (const t of ctx.targets) {
      const cpu0 = t.pids().reduce((sum, p) => sum + cpuMs(p), 0);
      const r = await runWrk({
        host: t.host,
        port: t.port,
        path: ep.path,
        connections,
        durationS: sizes.durationS,
        dir: ctx.dir,
        headers,
      });
      const cpu = t.pids().reduce((sum, p) => sum + cpuMs(p), 0) - cpu0;
      check(r, `${scenario} via ${t.name}`);
      const errNote = r.errors > 0 ? `${t.name}: ${r.errors} socket errors in round ${round + 1}` : undefined;
      if (errNote) ctx.log(`  ! ${errNote}`);
      results.add(
        { scenario, key: `${keyPrefix}.rps`, metric: "throughput", unit: "req/s", better: "higher" },
        t.name,
        r.rps,
      );
      results.add(
        { scenario, key: `${keyPrefix}.p50`, metric: "p50", unit: "ms", better: "lower" },
        t.name,
        r.p50,
      );
      results.add(
        { scenario, key: `${keyPrefix}.p99`, metric: "p99", unit: "ms", better: "lower" },
        t.name,
        r.p99,
      );
      // CPU per request: what the proxy costs, and what it takes away from the daemon on a small machine
      const cpuUs = (cpu * 1000) / r.requests;
      if (t.name !== "direct")
        results.add(
          { scenario, key: `${keyPrefix}.cpu`, metric: "proxy CPU per request", unit: "µs", better: "lower" },
          t.name,
          cpuUs,
        );
      ctx.log(
        `  ${scenario} [${t.name}] round ${round + 1}: ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms` +
          (t.name === "direct" ? "" : `, proxy CPU ${cpuUs.toFixed(0)} µs/req`),
      );
    }
  }
}

export async function smallRequests(ctx: Ctx): Promise<void> {
  for (const ep of endpoints(ctx)) {
    for (const c of ctx.sizes.connections) {
      await measure(ctx, ep, c, `${ep.label}, keep-alive, ${c} conns`, `small.${ep.key}.c${c}`);
    }
  }
}

export async function connectionChurn(ctx: Ctx): Promise<void> {
  const c = ctx.sizes.connections[0] as number;
  // the list is daemon-bound either way; the smoke run keeps only /_ping
  for (const ep of endpoints(ctx).filter((e) => e.key === "ping" || (e.key === "inspect" && !ctx.smoke))) {
    await measure(
      ctx,
      ep,
      c,
      `${ep.label}, new connection per request, ${c} conns`,
      `churn.${ep.key}.c${c}`,
      {
        Connection: "close",
      },
    );
  }
}
