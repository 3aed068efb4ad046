/**
 * Hijacked streams: N MiB piped through `cat` in a container and back, over the raw stream dockerd
 * hijacks (what `docker exec -i` / `docker attach` do). MB/s of payload, first byte sent to last byte back.
 *   exec:   POST /exec/{id}/start with Upgrade: tcp. direct and portcullis only: HAProxy 2.6 strips
 *           Upgrade from requests with a body (haproxy/haproxy#2684), so `docker exec` fails through it.
 *   attach: POST /containers/{id}/attach?stream=1&stdin=1&stdout=1 with Upgrade: tcp (no body):
 *           all three targets.
 */
import type { Ctx } from "../lib/context.js";
import type { Target } from "../lib/targets.js";
import { cpuMs, MB } from "../lib/util.js";

interface Piped {
  status: number;
  sent: number;
  received: number;
  ms: number;
}

/** One hijacked run through `t`: MB/s of payload and the proxy's CPU time. */
async function pipeThrough(
  ctx: Ctx,
  t: Target,
  request: string,
  scenario: string,
  key: string,
  label: string,
  round: number,
): Promise<void> {
  const bytes = ctx.sizes.hijackMiB * MB;
  const cpu0 = t.pids().reduce((sum, p) => sum + cpuMs(p), 0);
  const r = await ctx.client.run<Piped>(
    { kind: "hijack", host: t.host, port: t.port, request, bytes, timeoutMs: 120_000 },
    130_000,
  );
  const cpu = t.pids().reduce((sum, p) => sum + cpuMs(p), 0) - cpu0;
  const mbps = r.received / MB / (r.ms / 1000);
  ctx.results.add(
    { scenario, key: `${key}.mbps`, metric: "throughput", unit: "MB/s", better: "higher" },
    t.name,
    mbps,
  );
  if (t.name !== "direct")
    ctx.results.add(
      { scenario, key: `${key}.cpu`, metric: "proxy CPU", unit: "ms", better: "lower" },
      t.name,
      cpu,
    );
  ctx.log(
    `  ${label} [${t.name}] round ${round + 1}: ${mbps.toFixed(0)} MB/s (status ${r.status}, ${r.ms.toFixed(0)} ms` +
      (t.name === "direct" ? ")" : `, proxy CPU ${cpu} ms)`),
  );
}

export async function hijackStreams(ctx: Ctx): Promise<void> {
  const { sizes, api, seed } = ctx;
  const execScenario = `exec -i: ${sizes.hijackMiB} MiB through cat (HAProxy 2.6: not possible)`;
  const attachScenario = `attach: ${sizes.hijackMiB} MiB through cat`;
  for (let round = 0; round < sizes.rounds; round++) {
    for (const t of ctx.targets) {
      if (t.name === "haproxy") continue;
      const exec = await api.call<{ Id: string }>("POST", `/containers/${seed.runningId}/exec`, {
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Cmd: ["cat"],
      });
      const body = JSON.stringify({ Detach: false, Tty: false });
      const request =
        `POST /v1.41/exec/${exec.Id}/start HTTP/1.1\r\nHost: bench\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      await pipeThrough(ctx, t, request, execScenario, "hijack.exec", "exec", round);
    }
  }
  for (let round = 0; round < sizes.rounds; round++) {
    for (const t of ctx.targets) {
      const id = await api.createContainer(`bench-attach-${t.name}-${round}`, {
        Image: ctx.engine.image,
        Cmd: ["cat"],
        OpenStdin: true,
        StdinOnce: true,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        HostConfig: { NetworkMode: "none" },
      });
      try {
        await api.call("POST", `/containers/${id}/start`);
        const request =
          `POST /v1.41/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n` +
          "Host: bench\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        await pipeThrough(ctx, t, request, attachScenario, "hijack.attach", "attach", round);
      } finally {
        await api.call("DELETE", `/containers/${id}?force=1`).catch(() => {});
      }
    }
  }
}
