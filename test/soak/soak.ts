/**
 * Soak: a bounded mixed load through portcullis (its own process, test/helpers/proxy-process.ts) in
 * front of a private dockerd, with the proxy's RSS and open file descriptors sampled every second.
 *
 *   npm run soak -- --minutes 10        (needs root and dockerd: see test/helpers/dockerd.ts)
 *
 * The load: small allowed requests over keep-alive and over fresh connections (connection churn),
 * denials (403, 404, 431), `docker events` subscribers coming and going, logs (whole and `-f` cut
 * short), exec runs and attach sessions, archive uploads (complete and cut off), exports and image
 * saves (whole and cut off). Every operation has its expected outcome; anything else counts as
 * unexpected.
 *
 * No growth, defined: the run is cut into four quarters by time; the median of the last quarter
 * must be within +8 fds (less the two each open events subscriber holds: their number varies by
 * design) and within +10% or +16 MiB of RSS, whichever is larger (V8 and malloc size themselves in
 * the first minute: a 40 s run's RSS rises ~10% with a flat heap), of the median of the second (the
 * first is warm-up); the heap after GC at the end must be within +2 MiB of the heap at the end of
 * the first quarter; and no operation may have an unexpected outcome. A summary table is printed; the exit code is 0 when the
 * verdict is OK. test/e2e/soak-short.test.ts runs the same for 40 s inside `npm test`.
 */
import http from "node:http";
import { pathToFileURL } from "node:url";
import {
  abortCycle,
  CYCLE_ENV,
  call,
  createFixtures,
  type Fixtures,
  RawClient,
  tarHeader,
} from "../helpers/clients.js";
import { dockerdSkipReason, type PrivateDockerd, startDockerd } from "../helpers/dockerd.js";
import { type ProxyProcess, procStats, startProxyProcess } from "../helpers/proxy-process.js";

export interface SoakOptions {
  readonly seconds: number;
  /** A running engine with the test image; without it one is started (and stopped) here. */
  readonly engine?: PrivateDockerd;
  /** Concurrent request loops, besides the events subscribers. Default 6. */
  readonly workers?: number;
  /** Progress and the summary go here. Default: stdout. */
  readonly log?: (line: string) => void;
}

export interface SoakSample {
  /** Seconds since the start. */
  readonly t: number;
  readonly rss: number;
  readonly fds: number;
  /** Operations finished in the second before the sample. */
  readonly ops: number;
  readonly subscribers: number;
}

export interface SoakResult {
  readonly ok: boolean;
  readonly reasons: readonly string[];
  readonly samples: readonly SoakSample[];
  readonly ops: Readonly<Record<string, { ok: number; unexpected: number; lastError?: string }>>;
  /** Heap after GC at the end of the first quarter and at the end. */
  readonly heap: { readonly early: number; readonly end: number };
  readonly table: string;
}

const MB = 1024 * 1024;
const RSS_GROWTH = 0.1;
const RSS_SLACK = 16 * MB;
const FD_GROWTH = 8;
const HEAP_GROWTH = 2 * MB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** A complete archive: one 16 KiB file, then the two zero blocks that end a tar. */
function smallTar(): Buffer {
  const content = Buffer.alloc(16 * 1024, 0x62);
  return Buffer.concat([tarHeader("soak.bin", content.length), content, Buffer.alloc(1024, 0)]);
}

interface Ctx {
  readonly port: number;
  readonly fx: Fixtures;
  readonly agent: http.Agent;
  readonly engine: PrivateDockerd;
  /** dockerd's open sockets at the start: aborted uploads it has not finished yet hold one each. */
  readonly dockerdBaseSockets: number;
}

type Op = (c: Ctx) => Promise<void>;

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

async function expectStatus(
  p: Promise<{ status: number; body: Buffer }>,
  status: number,
  what: string,
): Promise<void> {
  const r = await p;
  expect(r.status === status, `${what}: ${r.status} ${r.body.toString("utf8").slice(0, 200)}`);
}

const TAR = smallTar();

const OPS: Readonly<Record<string, { weight: number; run: Op }>> = {
  "small, keep-alive": {
    weight: 30,
    run: async (c) => {
      const paths = ["/v1.41/_ping", "/v1.41/version", "/v1.41/containers/json?all=1", "/v1.41/images/json"];
      const path = paths[Math.floor(Math.random() * paths.length)] as string;
      await expectStatus(call(c.port, "GET", path, { agent: c.agent }), 200, path);
    },
  },
  "small, new connection": {
    weight: 10,
    run: (c) => expectStatus(call(c.port, "GET", "/v1.41/containers/json"), 200, "containers/json"),
  },
  denied: {
    weight: 10,
    run: async (c) => {
      const pick = Math.floor(Math.random() * 4);
      if (pick === 0)
        await expectStatus(call(c.port, "GET", "/v1.41/volumes", { agent: c.agent }), 403, "volumes");
      else if (pick === 1)
        await expectStatus(
          call(c.port, "POST", "/v1.41/volumes/create", { body: '{"Name":"soak"}' }),
          403,
          "volume create",
        );
      else if (pick === 2)
        await expectStatus(call(c.port, "GET", "/v1.41/no/such/route", { agent: c.agent }), 404, "no route");
      else
        await expectStatus(
          call(c.port, "GET", "/v1.41/_ping", { headers: { "X-Big": "x".repeat(20_000) } }),
          431,
          "oversized head",
        );
    },
  },
  logs: {
    weight: 5,
    run: (c) =>
      expectStatus(
        call(c.port, "GET", `/v1.41/containers/${c.fx.ticker}/logs?stdout=1&tail=50`, { agent: c.agent }),
        200,
        "logs",
      ),
  },
  "logs -f, cut short": { weight: 4, run: (c) => abortCycle("stream-logs", c.port, c.fx, c.agent) },
  "exec run": {
    weight: 4,
    run: async (c) => {
      const created = await call(c.port, "POST", `/v1.41/containers/${c.fx.cat}/exec`, {
        body: JSON.stringify({ AttachStdout: true, AttachStderr: true, Cmd: ["echo", "soak-exec"] }),
        agent: c.agent,
      });
      expect(created.status === 201, `exec create: ${created.status}`);
      const id = (JSON.parse(created.body.toString()) as { Id: string }).Id;
      const s = await RawClient.connect(c.port);
      try {
        const body = JSON.stringify({ Detach: false, Tty: false });
        await s.write(
          `POST /v1.41/exec/${id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        );
        await s.until((b) => b.includes("soak-exec"), "exec output");
        expect(s.status() === 101, `exec start: ${s.status()}`);
        await s.until(() => s.ended, "the end of the exec stream");
      } finally {
        s.destroy();
      }
    },
  },
  "exec, cut off": { weight: 2, run: (c) => abortCycle("hijack-exec", c.port, c.fx, c.agent) },
  attach: { weight: 5, run: (c) => abortCycle("hijack-attach", c.port, c.fx, c.agent) },
  "archive upload": {
    weight: 4,
    run: (c) =>
      expectStatus(
        call(c.port, "PUT", `/v1.41/containers/${c.fx.sink}/archive?path=/tmp`, {
          body: TAR,
          headers: { "Content-Type": "application/x-tar" },
          agent: c.agent,
        }),
        200,
        "archive upload",
      ),
  },
  "upload, cut off": {
    weight: 2,
    run: async (c) => {
      // dockerd needs ~40 ms per aborted upload: never let its backlog grow.
      if (procStats(c.engine.pid).sockets > c.dockerdBaseSockets + 32) return;
      await abortCycle(Math.random() < 0.5 ? "upload-archive" : "upload-load", c.port, c.fx, c.agent);
    },
  },
  "export, whole": {
    weight: 2,
    run: async (c) => {
      const r = await call(c.port, "GET", `/v1.41/containers/${c.fx.cat}/export`, {
        agent: c.agent,
        timeoutMs: 30_000,
      });
      expect(r.status === 200 && r.body.length > 512 * 1024, `export: ${r.status}, ${r.body.length} bytes`);
    },
  },
  "download, cut off": {
    weight: 3,
    run: (c) => abortCycle(Math.random() < 0.5 ? "download-save" : "download-export", c.port, c.fx, c.agent),
  },
};

function pickOp(): string {
  const names = Object.keys(OPS);
  const total = names.reduce((s, n) => s + (OPS[n]?.weight ?? 0), 0);
  let r = Math.random() * total;
  for (const n of names) {
    r -= OPS[n]?.weight ?? 0;
    if (r < 0) return n;
  }
  return names[0] as string;
}

function pad(s: string | number, n: number, left = false): string {
  const t = String(s);
  return left ? t.padStart(n) : t.padEnd(n);
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const workers = opts.workers ?? 6;
  const ownEngine = opts.engine === undefined;
  const engine = opts.engine ?? (await startDockerd({ image: true }));
  let proxy: ProxyProcess | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: workers });
  const subscribers = new Set<RawClient>();
  try {
    const fx = await createFixtures(engine.host, engine.image, `pc-soak-${process.pid}`);
    proxy = await startProxyProcess({ SOCKET_PATH: engine.socketPath, ...CYCLE_ENV });
    const p = proxy;
    const ctx: Ctx = { port: p.port, fx, agent, engine, dockerdBaseSockets: procStats(engine.pid).sockets };
    const ops: Record<string, { ok: number; unexpected: number; lastError?: string }> = {};
    for (const n of Object.keys(OPS)) ops[n] = { ok: 0, unexpected: 0 };
    ops["events subscriber"] = { ok: 0, unexpected: 0 };
    const started = Date.now();
    const deadline = started + opts.seconds * 1000;
    let finished = 0;
    const record = (name: string, error?: unknown) => {
      finished++;
      const o = ops[name] as { ok: number; unexpected: number; lastError?: string };
      if (error === undefined) o.ok++;
      else {
        o.unexpected++;
        o.lastError = (error as Error).message.slice(0, 300);
      }
    };
    log(
      `soak: ${opts.seconds} s, ${workers} workers, portcullis pid ${p.pid} on ${p.host}, dockerd pid ${engine.pid}`,
    );

    const worker = async () => {
      while (Date.now() < deadline && p.alive()) {
        const name = pickOp();
        try {
          await (OPS[name] as { run: Op }).run(ctx);
          record(name);
        } catch (error) {
          record(name, error);
        }
      }
    };
    // Subscribers come and go: up to 20 open, each for 0.2 to 3 s.
    const events = async () => {
      while (Date.now() < deadline && p.alive()) {
        if (subscribers.size < 20 && Math.random() < 0.6) {
          try {
            const s = await RawClient.connect(p.port);
            subscribers.add(s);
            await s.write("GET /v1.41/events HTTP/1.1\r\nHost: docker\r\n\r\n");
            await s.until((b) => b.includes("\r\n\r\n"), "events head", 5_000);
            expect(s.status() === 200, `events: ${s.status()}`);
            const life = 200 + Math.random() * 2800;
            setTimeout(() => {
              s.destroy();
              subscribers.delete(s);
            }, life).unref();
            record("events subscriber");
          } catch (error) {
            record("events subscriber", error);
          }
        }
        await sleep(100 + Math.random() * 200);
      }
    };

    const samples: SoakSample[] = [];
    let lastFinished = 0;
    let heapEarly = Number.NaN;
    const sampler = async () => {
      for (let i = 1; Date.now() < deadline && p.alive(); i++) {
        await sleep(Math.max(0, started + i * 1000 - Date.now()));
        if (!p.alive()) break;
        const s = p.proc();
        samples.push({
          t: i,
          rss: s.rss,
          fds: s.fds,
          ops: finished - lastFinished,
          subscribers: subscribers.size,
        });
        lastFinished = finished;
        if (i === Math.max(1, Math.floor(opts.seconds / 4))) heapEarly = (await p.stats()).heapUsed;
        if (i % 30 === 0)
          log(
            `  ${pad(i, 5, true)} s  RSS ${(s.rss / MB).toFixed(1)} MiB  fds ${s.fds}  ${samples.at(-1)?.ops} ops/s`,
          );
      }
    };
    await Promise.all([sampler(), events(), ...Array.from({ length: workers }, worker)]);
    for (const s of subscribers) s.destroy();
    subscribers.clear();
    agent.destroy();
    const alive = p.alive();
    const heapEnd = alive ? (await p.stats()).heapUsed : Number.NaN;

    // The verdict.
    const reasons: string[] = [];
    const q = Math.floor(samples.length / 4);
    const quarter = (k: number) => samples.slice(k * q, k === 3 ? samples.length : (k + 1) * q);
    const rows = [0, 1, 2, 3].map((k) => {
      const part = quarter(k);
      return {
        name: `Q${k + 1}`,
        from: part[0]?.t ?? 0,
        to: part.at(-1)?.t ?? 0,
        rss: median(part.map((s) => s.rss)),
        fds: median(part.map((s) => s.fds)),
        net: median(part.map((s) => s.fds - 2 * s.subscribers)),
        ops: median(part.map((s) => s.ops)),
        subs: median(part.map((s) => s.subscribers)),
      };
    });
    const [, q2, , q4] = rows as [unknown, (typeof rows)[0], unknown, (typeof rows)[0]];
    if (!alive) reasons.push("the proxy process died");
    if (q < 2) reasons.push(`too few samples (${samples.length}) for a verdict`);
    else {
      if (q4.rss > q2.rss + Math.max(q2.rss * RSS_GROWTH, RSS_SLACK))
        reasons.push(
          `RSS grew: Q4 median ${(q4.rss / MB).toFixed(1)} MiB > Q2 median ${(q2.rss / MB).toFixed(1)} MiB + max(10%, 16 MiB)`,
        );
      if (q4.net > q2.net + FD_GROWTH)
        reasons.push(
          `fds grew: Q4 median ${q4.net} > Q2 median ${q2.net} + ${FD_GROWTH} (less events subscribers)`,
        );
    }
    if (!(heapEnd <= heapEarly + HEAP_GROWTH))
      reasons.push(
        `heap after GC grew: ${(heapEarly / MB).toFixed(2)} -> ${(heapEnd / MB).toFixed(2)} MiB (limit +2)`,
      );
    const unexpected = Object.values(ops).reduce((s, o) => s + o.unexpected, 0);
    if (unexpected > 0) reasons.push(`${unexpected} operations had an unexpected outcome`);
    const total = Object.values(ops).reduce((s, o) => s + o.ok + o.unexpected, 0);

    const lines: string[] = [];
    lines.push(
      `soak summary: ${samples.length} s sampled, ${total} operations, ${workers} workers + events subscribers`,
    );
    lines.push(
      `${pad("quarter", 8)}${pad("seconds", 10)}${pad("RSS median", 13, true)}${pad("fds median", 12, true)}${pad("net fds", 9, true)}${pad("ops/s", 8, true)}${pad("subscribers", 13, true)}`,
    );
    for (const r of rows)
      lines.push(
        `${pad(r.name, 8)}${pad(`${r.from}-${r.to}`, 10)}${pad(`${(r.rss / MB).toFixed(1)} MiB`, 13, true)}${pad(r.fds, 12, true)}${pad(r.net, 9, true)}${pad(Math.round(r.ops), 8, true)}${pad(r.subs, 13, true)}`,
      );
    lines.push(`${pad("operation", 24)}${pad("ok", 8, true)}${pad("unexpected", 12, true)}`);
    for (const [n, o] of Object.entries(ops)) {
      lines.push(
        `${pad(n, 24)}${pad(o.ok, 8, true)}${pad(o.unexpected, 12, true)}${o.lastError ? `  last: ${o.lastError}` : ""}`,
      );
    }
    lines.push(
      `heap after GC: ${(heapEarly / MB).toFixed(2)} MiB at ${Math.max(1, Math.floor(opts.seconds / 4))} s, ${(heapEnd / MB).toFixed(2)} MiB at the end`,
    );
    const growth =
      q >= 2
        ? `RSS Q4-Q2 ${((q4.rss - q2.rss) / MB).toFixed(1)} MiB (${(((q4.rss - q2.rss) / q2.rss) * 100).toFixed(1)}%; limit +${(Math.max(q2.rss * RSS_GROWTH, RSS_SLACK) / MB).toFixed(1)}), net fds Q4-Q2 ${q4.net - q2.net >= 0 ? "+" : ""}${q4.net - q2.net} (limit +${FD_GROWTH})`
        : "";
    lines.push(
      `verdict: ${reasons.length === 0 ? "OK" : "FAILED"}${growth ? `; ${growth}` : ""}${reasons.length ? `; ${reasons.join("; ")}` : ""}`,
    );
    const table = lines.join("\n");
    log(table);
    return {
      ok: reasons.length === 0,
      reasons,
      samples,
      ops,
      heap: { early: heapEarly, end: heapEnd },
      table,
    };
  } finally {
    for (const s of subscribers) s.destroy();
    agent.destroy();
    if (proxy && !proxy.alive()) log(`portcullis output (tail):\n${proxy.output().slice(-4000)}`);
    await proxy?.stop();
    if (ownEngine) await engine.stop();
  }
}

/* ------------------------------------------------------------------ npm run soak -- --minutes N */

function parseArgs(argv: readonly string[]): { seconds: number; workers?: number } {
  let seconds = 600;
  let workers: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === "--minutes") seconds = value() * 60;
    else if (a === "--seconds") seconds = value();
    else if (a === "--workers") workers = Math.floor(value());
    else
      throw new Error(
        `unknown argument ${a}; usage: npm run soak -- [--minutes N | --seconds N] [--workers N]`,
      );
  }
  return { seconds: Math.round(seconds), ...(workers ? { workers } : {}) };
}

// Only as a program: the test runner also loads every .js under dist/test, and must get a no-op.
const asProgram =
  process.env.NODE_TEST_CONTEXT === undefined &&
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(process.argv[1]).href;
if (asProgram) {
  const main = async () => {
    const args = parseArgs(process.argv.slice(2));
    const skip = dockerdSkipReason({ image: true });
    if (skip) {
      process.stderr.write(`soak: ${skip}\n`);
      return 2;
    }
    const result = await runSoak(args);
    return result.ok ? 0 : 1;
  };
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`soak failed: ${(error as Error).stack ?? error}\n`);
      process.exit(1);
    },
  );
}
