/**
 * Bulk streaming: `GET /images/{name}/get` of an image holding a >= 200 MiB file (download), and
 * `POST /images/load` of the same tarball (upload). MB/s (1 MB = 1 MiB) end to end, plus the proxy's CPU time.
 */
import type { Ctx } from "../lib/context.js";
import { cpuMs, MB } from "../lib/util.js";

interface Transfer {
  status: number;
  bytes: number;
  ms: number;
  body?: string;
}

export async function bulkStreaming(ctx: Ctx): Promise<void> {
  const { seed, results, client, sizes } = ctx;
  const getScenario = `GET /images/{name}/get (${Math.round(seed.bigTarBytes / MB)} MiB)`;
  const loadScenario = `POST /images/load (${Math.round(seed.bigTarBytes / MB)} MiB)`;
  for (let round = 0; round < sizes.rounds; round++) {
    for (const t of ctx.targets) {
      const cpu0 = t.pids().reduce((s, p) => s + cpuMs(p), 0);
      const r = await client.run<Transfer>(
        {
          kind: "download",
          host: t.host,
          port: t.port,
          path: `/v1.41/images/${seed.bigImage}/get`,
          timeoutMs: 120_000,
        },
        130_000,
      );
      const cpu = t.pids().reduce((s, p) => s + cpuMs(p), 0) - cpu0;
      if (r.status !== 200 || r.bytes !== seed.bigTarBytes)
        throw new Error(
          `image get via ${t.name}: status ${r.status}, ${r.bytes} of ${seed.bigTarBytes} bytes`,
        );
      const mbps = r.bytes / MB / (r.ms / 1000);
      results.add(
        { scenario: getScenario, key: "bulk.get.mbps", metric: "throughput", unit: "MB/s", better: "higher" },
        t.name,
        mbps,
      );
      if (t.name !== "direct")
        results.add(
          { scenario: getScenario, key: "bulk.get.cpu", metric: "proxy CPU", unit: "ms", better: "lower" },
          t.name,
          cpu,
        );
      ctx.log(
        `  image get [${t.name}] round ${round + 1}: ${mbps.toFixed(0)} MB/s (${r.ms.toFixed(0)} ms, proxy CPU ${cpu} ms)`,
      );
    }
  }
  for (let round = 0; round < sizes.rounds; round++) {
    for (const t of ctx.targets) {
      const cpu0 = t.pids().reduce((s, p) => s + cpuMs(p), 0);
      const r = await client.run<Transfer>(
        {
          kind: "upload",
          host: t.host,
          port: t.port,
          path: "/v1.41/images/load?quiet=1",
          file: seed.bigTar,
          contentType: "application/x-tar",
          timeoutMs: 180_000,
        },
        190_000,
      );
      const cpu = t.pids().reduce((s, p) => s + cpuMs(p), 0) - cpu0;
      if (r.status !== 200 || !/Loaded image/.test(r.body ?? ""))
        throw new Error(`image load via ${t.name}: status ${r.status}: ${r.body}`);
      const mbps = r.bytes / MB / (r.ms / 1000);
      results.add(
        {
          scenario: loadScenario,
          key: "bulk.load.mbps",
          metric: "throughput",
          unit: "MB/s",
          better: "higher",
        },
        t.name,
        mbps,
      );
      if (t.name !== "direct")
        results.add(
          { scenario: loadScenario, key: "bulk.load.cpu", metric: "proxy CPU", unit: "ms", better: "lower" },
          t.name,
          cpu,
        );
      ctx.log(
        `  image load [${t.name}] round ${round + 1}: ${mbps.toFixed(0)} MB/s (${r.ms.toFixed(0)} ms, proxy CPU ${cpu} ms)`,
      );
    }
  }
}
