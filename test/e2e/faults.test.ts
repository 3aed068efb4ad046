/**
 * Faults, against a private dockerd with busybox:
 *
 * - dockerd stopped and started again while a bounded client loop runs through the real portcullis
 *   process: the process keeps running, answers Docker-format JSON 502 while the daemon is away,
 *   serves again without a restart, and `portcullis healthcheck` says unhealthy, then healthy;
 * - clients that go away mid-upload, mid-download, mid-stream and mid-hijack, cycle after cycle: the
 *   proxy (its own process, see test/helpers/proxy-process.ts) keeps no file descriptor, socket or
 *   heap; the daemon side is watched through the byte tap, so a connection left open to the daemon
 *   shows up too;
 * - a client reading a 200 MB export at about 1 MB/s: the proxy reads from the daemon only as fast as
 *   the client reads (plus socket buffers) and its RSS stays bounded;
 * - SIGTERM with `docker events`, `docker logs -f` and an attach tunnel open: exit within 2 s.
 *
 * Cycle counts: PORTCULLIS_FAULT_CYCLES per kind (default 1000) within PORTCULLIS_FAULT_BUDGET_MS per
 * kind (default 3000; at least 50 cycles whatever the time); the test reports the exact numbers. docs/security.md §2.7 has the results of a
 * long run.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import {
  ABORT_KINDS,
  type AbortKind,
  abortCycle,
  CYCLE_ENV,
  call,
  createFixtures,
  type Fixtures,
  jsonMessage,
  RawClient,
} from "../helpers/clients.js";
import { runDocker, startDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd, stopDaemonProcess } from "../helpers/dockerd.js";
import { CLI, startCli } from "../helpers/proxy.js";
import { type ProxyProcess, procStats, startProxyProcess } from "../helpers/proxy-process.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1024 * 1024;
const CYCLES = Number(process.env.PORTCULLIS_FAULT_CYCLES ?? 1000);
const BUDGET_MS = Number(process.env.PORTCULLIS_FAULT_BUDGET_MS ?? 3000);
const CONCURRENCY = 4;
/** Cycles each kind runs even past the budget (a loaded machine). */
const MIN_CYCLES = 50;

function portOf(output: string): number {
  const m = /listening on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(output);
  assert.ok(m, `no listening line in:\n${output.slice(0, 2000)}`);
  return Number(m[1]);
}

function healthcheck(port: number): { status: number | null; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, "healthcheck", "--listen", `tcp://127.0.0.1:${port}`], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return { status: r.status, stdout: r.stdout + r.stderr };
}

function ioBytes(pid: number): { read: number; written: number } {
  const s = readFileSync(`/proc/${pid}/io`, "utf8");
  return { read: Number(/rchar: (\d+)/.exec(s)?.[1]), written: Number(/wchar: (\d+)/.exec(s)?.[1]) };
}

interface Sample {
  readonly start: number;
  readonly end: number;
  readonly status?: number;
  readonly message?: string;
  readonly json?: boolean;
  readonly error?: string;
}

describeWithDockerd("faults", {}, (engine) => {
  let fx: Fixtures | undefined;
  const fixtures = async () => {
    fx ??= await createFixtures(engine.host, engine.image);
    return fx;
  };

  // First, while no container runs: dockerd stops at once.
  it("keeps serving while dockerd is stopped and started again under load: JSON 502 while away, healthy again without a restart", async (t) => {
    const p = await startCli(["--listen", "tcp://127.0.0.1:0"], {
      SOCKET_PATH: engine.socketPath,
      CONTAINERS: "1",
    });
    after(() => p.stop());
    const port = portOf(p.output());
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    after(() => agent.destroy());
    const samples: Sample[] = [];
    let stop = false;
    const loopDeadline = Date.now() + 90_000;
    const loop = async (i: number) => {
      for (let n = 0; !stop && n < 20_000 && Date.now() < loopDeadline; n++) {
        const start = Date.now();
        const path = (n + i) % 2 === 0 ? "/v1.41/_ping" : "/v1.41/containers/json?all=1";
        try {
          const r = await call(port, "GET", path, { agent, timeoutMs: 10_000 });
          const message = jsonMessage(r);
          samples.push({
            start,
            end: Date.now(),
            status: r.status,
            json: r.headers["content-type"] === "application/json",
            ...(message !== undefined ? { message } : {}),
          });
        } catch (error) {
          samples.push({ start, end: Date.now(), error: (error as Error).message });
        }
        await sleep(5);
      }
    };
    const loops = [0, 1, 2, 3].map(loop);
    try {
      await sleep(1000);
      const stopping = Date.now();
      const daemon = await stopDaemonProcess(engine);
      const down = Date.now();
      await sleep(1500);
      const unhealthy = healthcheck(port);
      const starting = Date.now();
      await daemon.start();
      const up = Date.now();
      let firstOk: number | undefined;
      for (let i = 0; i < 100 && firstOk === undefined; i++) {
        firstOk = samples.find((s) => s.start >= up && s.status === 200)?.end;
        if (firstOk === undefined) await sleep(50);
      }
      const healthy = healthcheck(port);
      await sleep(1000);
      stop = true;
      await Promise.all(loops);

      assert.equal(p.child.exitCode, null, `portcullis exited:\n${p.output().slice(-2000)}`);
      assert.equal(unhealthy.status, 1, unhealthy.stdout);
      assert.match(unhealthy.stdout, /^unhealthy: HTTP 502: .*could not reach the Docker daemon/);
      assert.equal(healthy.status, 0, healthy.stdout);
      assert.match(healthy.stdout, /^healthy: /);
      assert.ok(firstOk !== undefined, "no 200 through the proxy within 5 s of dockerd answering again");
      const before = samples.filter((s) => s.end < stopping);
      const away = samples.filter((s) => s.start >= down && s.end <= starting);
      const afterwards = samples.filter((s) => s.start >= (firstOk as number));
      const errors = samples.filter((s) => s.error !== undefined);
      assert.ok(
        before.length > 20 && away.length > 20 && afterwards.length > 20,
        "the loop ran in every phase",
      );
      assert.deepEqual(
        before.filter((s) => s.status !== 200),
        [],
        "before the stop: all 200",
      );
      assert.deepEqual(
        away.filter(
          (s) =>
            s.status !== 502 || s.json !== true || !/could not reach the Docker daemon/.test(s.message ?? ""),
        ),
        [],
        "while dockerd is away: JSON 502 every time",
      );
      assert.deepEqual(
        afterwards.filter((s) => s.status !== 200),
        [],
        "after recovery: all 200",
      );
      // In the transitions a request gets 200 or the JSON 502: never a dropped connection.
      assert.deepEqual(errors, [], "every request got an HTTP answer");
      assert.deepEqual(
        samples.filter((s) => s.status !== 200 && s.status !== 502),
        [],
        "only 200 and 502",
      );
      t.diagnostic(
        `requests ${samples.length} (before ${before.length}, away ${away.length} all 502, after ${afterwards.length}); ` +
          `dockerd stop took ${down - stopping} ms, start ${up - starting} ms; ` +
          `first 200 through portcullis ${(firstOk as number) - up} ms after dockerd answered again`,
      );
      assert.ok((firstOk as number) - up < 2000, `recovery took ${(firstOk as number) - up} ms`);
    } finally {
      stop = true;
      await Promise.all(loops);
    }
  });

  describe("clients that go away leave nothing behind", () => {
    let proxy: ProxyProcess | undefined;
    before(async () => {
      await fixtures();
      proxy = await startProxyProcess({ SOCKET_PATH: engine.socketPath, ...CYCLE_ENV });
    });
    after(() => proxy?.stop());

    /**
     * Once the proxy has settled (fd count steady, no handle left from the last cycles, +1 s): its fds,
     * of which connections to the daemon (unix sockets: idle pooled ones come and go), heap after GC.
     */
    const measure = async (handles?: number) => {
      const p = proxy as ProxyProcess;
      const deadline = Date.now() + 5_000;
      let last = -1;
      while (Date.now() < deadline) {
        const fds = p.proc().fds;
        const settled = fds === last && (handles === undefined || (await p.stats()).handles <= handles);
        if (settled) break;
        last = fds;
        await sleep(100);
      }
      await sleep(500);
      const s = await p.stats();
      const daemon = s.unix - 1; // less the IPC channel
      return { ...s, daemon, own: s.fds - daemon };
    };

    for (const kind of ABORT_KINDS) {
      it(`${kind}: fds, sockets and heap flat over the cycles`, async (t) => {
        const p = proxy as ProxyProcess;
        const f = fx as Fixtures;
        // Exec create goes over keep-alive connections: closed before each measurement.
        let a = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
        for (let i = 0; i < 2 * CONCURRENCY; i++) await abortCycle(kind as AbortKind, p.port, f, a);
        a.destroy();
        a = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
        after(() => a.destroy());
        const m0 = await measure();
        const dockerd0 = procStats(engine.pid);
        // dockerd works through an aborted upload for ~40 ms (archive: one at a time per container):
        // keep its backlog bounded, or it would hold thousands of connections.
        const upload = kind.startsWith("upload");
        let done = 0;
        let throttled = 0;
        const deadline = Date.now() + BUDGET_MS;
        const worker = async () => {
          while (done < CYCLES && (Date.now() < deadline || done < MIN_CYCLES)) {
            if (upload && procStats(engine.pid).sockets > dockerd0.sockets + 32) {
              throttled++;
              await sleep(10);
              continue;
            }
            done++;
            await abortCycle(kind as AbortKind, p.port, f, a);
          }
        };
        const started = Date.now();
        await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        const took = Date.now() - started;
        a.destroy();
        const m1 = await measure(m0.handles);
        t.diagnostic(
          `${kind}: ${done} cycles in ${took} ms${upload ? ` (${throttled} waits for dockerd)` : ""}; proxy fds ${m0.fds} -> ${m1.fds} ` +
            `(sockets ${m0.sockets} -> ${m1.sockets}, to the daemon ${m0.daemon} -> ${m1.daemon}); ` +
            `heap after GC ${(m0.heapUsed / MB).toFixed(2)} -> ${(m1.heapUsed / MB).toFixed(2)} MiB; ` +
            `external ${(m0.external / MB).toFixed(2)} -> ${(m1.external / MB).toFixed(2)} MiB; handles ${m0.handles} -> ${m1.handles}; ` +
            `dockerd fds ${dockerd0.fds} -> ${procStats(engine.pid).fds}`,
        );
        assert.ok(p.alive(), "the proxy process is running");
        assert.ok(done >= MIN_CYCLES, `only ${done} cycles ran`);
        // Without the daemon connections (idle pooled ones come and go), nothing may grow.
        assert.ok(m1.own <= m0.own + 1, `proxy fds without daemon connections: ${m0.own} -> ${m1.own}`);
        assert.ok(m1.daemon <= m0.daemon + CONCURRENCY, `daemon connections ${m0.daemon} -> ${m1.daemon}`);
        assert.ok(m1.handles <= m0.handles + 1, `handles ${m0.handles} -> ${m1.handles}`);
        assert.ok(
          m1.heapUsed - m0.heapUsed < 2 * MB,
          `heap grew by ${((m1.heapUsed - m0.heapUsed) / MB).toFixed(2)} MiB`,
        );
        assert.ok(
          m1.external - m0.external < 2 * MB,
          `external grew by ${((m1.external - m0.external) / MB).toFixed(2)} MiB`,
        );
      });
    }
  });

  it("back-pressures a client reading a 200 MB export at 1 MB/s", async (t) => {
    const made = await runDocker(
      engine.host,
      [
        "run",
        "--name",
        "pc-fault-big",
        engine.image,
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1048576",
        "count=200",
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(made.code, 0, made.stderr);
    after(() => runDocker(engine.host, ["rm", "-f", "-v", "pc-fault-big"]));
    const p = await startProxyProcess({ SOCKET_PATH: engine.socketPath, CONTAINERS: "1" });
    after(() => p.stop());
    const base = await p.stats();
    const io0 = ioBytes(p.pid);
    const s = net.connect({ host: "127.0.0.1", port: p.port });
    after(() => s.destroy());
    await new Promise((r) => s.once("connect", r));
    s.on("readable", () => {});
    s.write("GET /v1.41/containers/pc-fault-big/export HTTP/1.1\r\nHost: docker\r\n\r\n");
    let got = 0;
    let maxRss = base.rss;
    const t0 = Date.now();
    // About 1 MB/s: up to 100 KiB every 100 ms, for 5 s.
    while (Date.now() - t0 < 5000) {
      const tickEnd = Date.now() + 100;
      let budget = 100 * 1024;
      while (budget > 0 && Date.now() < tickEnd) {
        const chunk = s.read() as Buffer | null;
        if (chunk === null) await new Promise((r) => setTimeout(r, 1));
        else {
          got += chunk.length;
          budget -= chunk.length;
        }
      }
      await sleep(Math.max(0, tickEnd - Date.now()));
      maxRss = Math.max(maxRss, p.proc().rss);
    }
    const seconds = (Date.now() - t0) / 1000;
    const io1 = ioBytes(p.pid);
    const proxyRead = io1.read - io0.read;
    s.destroy();
    const settled = await p.stats();
    t.diagnostic(
      `client read ${(got / MB).toFixed(1)} MiB in ${seconds.toFixed(1)} s; the proxy read ${(proxyRead / MB).toFixed(1)} MiB ` +
        `from its sockets; proxy RSS ${(base.rss / MB).toFixed(1)} MiB -> peak ${(maxRss / MB).toFixed(1)} MiB ` +
        `(+${((maxRss - base.rss) / MB).toFixed(1)}); fds ${base.fds} -> ${settled.fds} after the client left`,
    );
    assert.ok(got > MB && got < 8 * MB, `the client read ${got} bytes`);
    // Without back-pressure the proxy would have read all 200 MB within a second or two.
    assert.ok(proxyRead < got + 40 * MB, `proxy read ${proxyRead} bytes for ${got} delivered`);
    assert.ok(maxRss - base.rss < 64 * MB, `RSS grew by ${((maxRss - base.rss) / MB).toFixed(1)} MiB`);
    let fds = settled.fds;
    for (let i = 0; i < 40 && fds > base.fds; i++) {
      await sleep(50);
      fds = p.proc().fds;
    }
    assert.ok(fds <= base.fds + 1, `fds ${base.fds} -> ${fds} after the slow client left`);
  });

  it("exits within 2 s of SIGTERM with docker events, docker logs -f and an attach tunnel open", async (t) => {
    const f = await fixtures();
    const p = await startCli(["--listen", "tcp://127.0.0.1:0"], {
      SOCKET_PATH: engine.socketPath,
      CONTAINERS: "1",
      POST: "1",
    });
    after(() => p.stop());
    const port = portOf(p.output());
    const host = `tcp://127.0.0.1:${port}`;
    const events = startDocker(host, ["events"]);
    const logs = startDocker(host, ["logs", "-f", "--tail", "1", f.ticker]);
    after(() => Promise.all([events.kill(), logs.kill()]));
    await logs.waitForOutput(/tick/, 10_000);
    const attach = await RawClient.connect(port);
    after(() => attach.destroy());
    await attach.write(
      `POST /v1.41/containers/${f.cat}/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`,
    );
    await attach.until((b) => b.includes("\r\n\r\n"), "the attach 101");
    assert.equal(attach.status(), 101);
    await attach.write("still-here\n");
    await attach.until((b) => b.includes("still-here"), "the attach echo");
    await sleep(300);
    const started = Date.now();
    p.child.kill("SIGTERM");
    const [code] = await p.exited;
    const took = Date.now() - started;
    const released = await Promise.race([
      Promise.all([
        events.exited,
        logs.exited,
        attach.until(() => false, "close", 3000).catch(() => undefined),
      ]),
      sleep(3000),
    ]);
    t.diagnostic(`exited ${took} ms after SIGTERM with events, logs -f and attach open`);
    assert.equal(code, 0);
    assert.ok(took < 2000, `took ${took} ms`);
    assert.ok(released !== undefined, "docker events and logs -f ended");
    assert.ok(attach.ended, "the attach connection was closed");
  });
});
