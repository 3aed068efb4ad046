/**
 * Event fan-out: N concurrent `GET /events` subscribers through the target while containers start
 * and are killed; a reference subscriber connected straight to the daemon says how many events there
 * were, and every subscriber must receive exactly that many. Reports subscribers delivered, the
 * proxy's peak RSS and CPU time, and the delivery lag behind the reference.
 */
import type { Ctx } from "../lib/context.js";
import { cpuMs, MB, rssSampler } from "../lib/util.js";

interface Opened {
  connected: number;
  failed: number;
  errors: string[];
  ms: number;
}
interface Waited {
  expected: number;
  reference: number;
  subscribers: number;
  delivered: number;
  min: number;
  max: number;
  lagMs: number;
}

export async function eventFanout(ctx: Ctx): Promise<void> {
  const { sizes, client, api, seed, results } = ctx;
  const n = sizes.eventSubscribers;
  const filters = encodeURIComponent(
    JSON.stringify({ type: ["container"], label: ["bench.events=1"], event: ["start", "die"] }),
  );
  const path = `/v1.41/events?filters=${filters}`;
  const direct = ctx.targets.find((t) => t.name === "direct");
  if (!direct) throw new Error("the event scenario needs the direct target for its reference subscriber");
  const scenario = `GET /events, ${n.toLocaleString("en-US")} subscribers, ${seed.eventIds.length * sizes.eventCycles * 2} events`;
  const rounds = Math.min(sizes.rounds, 2);
  for (let round = 0; round < rounds; round++) {
    for (const t of ctx.targets) {
      const sampler = rssSampler(() => t.pids(), 100);
      const cpu0 = t.pids().reduce((s, p) => s + cpuMs(p), 0);
      try {
        const opened = await client.run<Opened>(
          {
            kind: "events-open",
            host: t.host,
            port: t.port,
            path,
            n,
            reference: { host: direct.host, port: direct.port },
            timeoutMs: 15_000,
          },
          30_000,
        );
        if (opened.failed > 0)
          ctx.log(
            `  ! [${t.name}] ${opened.failed} of ${n} subscribers got no 200 within 15 s ${opened.errors.join("; ")}`,
          );
        // dockerd registers a subscriber after sending the headers: give it a moment
        await new Promise((r) => setTimeout(r, 300));
        const t0 = performance.now();
        for (let c = 0; c < sizes.eventCycles; c++) {
          for (const id of seed.eventIds) await api.call("POST", `/containers/${id}/start`);
          for (const id of seed.eventIds) await api.call("POST", `/containers/${id}/kill`);
          for (const id of seed.eventIds)
            await api.call("POST", `/containers/${id}/wait?condition=not-running`);
        }
        const genMs = performance.now() - t0;
        const expected = seed.eventIds.length * sizes.eventCycles * 2;
        const w = await client.run<Waited>({ kind: "events-wait", expected, timeoutMs: 20_000 }, 30_000);
        const cpu = t.pids().reduce((s, p) => s + cpuMs(p), 0) - cpu0;
        const rss = sampler.stop();
        results.add(
          { scenario, key: "events.subscribers", metric: "subscribers", unit: "count", better: "higher" },
          t.name,
          n,
        );
        results.add(
          {
            scenario,
            key: "events.delivered",
            metric: "got every event",
            unit: "subscribers",
            better: "higher",
          },
          t.name,
          w.delivered,
        );
        results.add(
          {
            scenario,
            key: "events.lag",
            metric: "last delivery after reference",
            unit: "ms",
            better: "lower",
          },
          t.name,
          w.lagMs,
        );
        if (t.name !== "direct") {
          results.add(
            { scenario, key: "events.rss", metric: "proxy peak RSS", unit: "MB", better: "lower" },
            t.name,
            rss.peak / MB,
          );
          results.add(
            { scenario, key: "events.cpu", metric: "proxy CPU", unit: "ms", better: "lower" },
            t.name,
            cpu,
          );
        }
        ctx.log(
          `  events [${t.name}] round ${round + 1}: ${opened.connected}/${n} connected in ${opened.ms.toFixed(0)} ms; ` +
            `${w.delivered}/${n} got all ${w.reference} events (expected ${expected}, min ${w.min}, max ${w.max}), ` +
            `lag ${w.lagMs.toFixed(1)} ms; events generated in ${genMs.toFixed(0)} ms; ` +
            (t.name === "direct" ? "" : `proxy peak RSS ${(rss.peak / MB).toFixed(1)} MB, CPU ${cpu} ms`),
        );
        if (w.reference !== expected)
          throw new Error(`the reference subscriber saw ${w.reference} events, expected ${expected}`);
      } finally {
        sampler.stop();
        await client.run({ kind: "events-close" }, 10_000).catch(() => {});
        // let the proxy notice the closed streams before the next target
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
}
