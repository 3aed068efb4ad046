/**
 * Footprint of fresh proxy processes (HAProxy and portcullis only; the daemon is not a proxy):
 *   start-up: spawn to the first accepted TCP connection (the listener is up)
 *   memory:   RSS after start-up and one /_ping ("idle"), and with N idle keep-alive connections,
 *             each of which has made one /_ping (HAProxy: master + worker summed)
 */
import type { Ctx } from "../lib/context.js";
import { type StartedTarget, startHaproxy, startPortcullis, type TargetName } from "../lib/targets.js";
import { MB, rssBytes, sleep } from "../lib/util.js";

async function fresh(ctx: Ctx, name: TargetName, tag: string): Promise<StartedTarget> {
  return name === "haproxy"
    ? startHaproxy(ctx.proxyOptions, tag)
    : startPortcullis(ctx.proxyOptions, tag, ctx.nodeArgs);
}

const rss = (t: StartedTarget) => t.pids().reduce((s, p) => s + rssBytes(p), 0) / MB;

export async function startup(ctx: Ctx): Promise<void> {
  const scenario = "start-up, spawn to first accepted connection";
  // the daemon may still be settling from the seeding (swarm tasks starting): let it
  if (!ctx.smoke) await sleep(3_000);
  for (let i = 0; i < ctx.sizes.startups; i++) {
    for (const name of ["haproxy", "portcullis"] as const) {
      const t = await fresh(ctx, name, `${name}-startup-${i}`);
      await t.stop();
      ctx.results.add(
        { scenario, key: "startup.accept", metric: "start-up", unit: "ms", better: "lower" },
        name,
        t.startMs,
      );
      ctx.log(`  start-up [${name}] #${i + 1}: ${t.startMs.toFixed(0)} ms`);
    }
  }
}

export async function memory(ctx: Ctx): Promise<void> {
  const n = ctx.sizes.idleConnections;
  const scenario = "memory (fresh process)";
  for (let round = 0; round < ctx.sizes.rounds; round++) {
    for (const name of ["haproxy", "portcullis"] as const) {
      const t = await fresh(ctx, name, `${name}-memory-${round}`);
      try {
        const one = await ctx.client.run<{ open: number }>(
          { kind: "idle-open", host: t.host, port: t.port, n: 1, path: "/_ping", timeoutMs: 10_000 },
          20_000,
        );
        await ctx.client.run({ kind: "idle-close" }, 10_000);
        if (one.open !== 1) throw new Error(`${name}: /_ping failed on a fresh process`);
        await sleep(500);
        const idle = rss(t);
        const opened = await ctx.client.run<{ open: number; failed: number }>(
          { kind: "idle-open", host: t.host, port: t.port, n, path: "/_ping", timeoutMs: 30_000 },
          40_000,
        );
        await sleep(500);
        const loaded = rss(t);
        const closed = await ctx.client.run<{ stillOpen: number }>({ kind: "idle-close" }, 10_000);
        if (opened.open !== n)
          throw new Error(`${name}: only ${opened.open} of ${n} keep-alive connections made /_ping`);
        ctx.results.add(
          { scenario, key: "memory.idle", metric: "RSS idle", unit: "MB", better: "lower" },
          name,
          idle,
        );
        ctx.results.add(
          {
            scenario,
            key: "memory.keepalive",
            metric: `RSS, ${n.toLocaleString("en-US")} idle keep-alive conns`,
            unit: "MB",
            better: "lower",
          },
          name,
          loaded,
        );
        ctx.log(
          `  memory [${name}] round ${round + 1}: idle ${idle.toFixed(1)} MB, with ${n} keep-alive connections ${loaded.toFixed(1)} MB (${closed.stillOpen} still open at the end)`,
        );
      } finally {
        await t.stop();
      }
    }
  }
}
