/**
 * Limits on raw sockets, through the byte tap in front of a private dockerd: each limit answers with
 * a clear Docker-format 4xx (or, for the connection cap, the documented close), and the tap shows the
 * refused request never reached the daemon. The requests are ones the policy allows (CONTAINERS=1),
 * so only the limit stands between them and the daemon.
 *
 * docs/security.md §2.6 and the "Limits and timeouts" table of docs/configuration.md describe them.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { DEFAULT_LIMITS } from "../../src/config/config.js";
import { loadConfig } from "../../src/config/env.js";
import { ConfigError } from "../../src/config/errors.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";
import { header, messageOf, RawConnection, rawExchange } from "../helpers/raw-http.js";
import { assertOnlyAllowedReachedDaemon, startTap, type Tap } from "../helpers/tap.js";

const LIST = "/v1.41/containers/json";
const LIMITS = {
  PORTCULLIS_MAX_HEADER_BYTES: "4096",
  PORTCULLIS_MAX_HEADER_COUNT: "20",
  PORTCULLIS_HEADERS_TIMEOUT_MS: "1000",
  PORTCULLIS_KEEPALIVE_TIMEOUT_MS: "1000",
  PORTCULLIS_MAX_CONNECTIONS: "4",
  PORTCULLIS_HIJACK_BODY_MAX_BYTES: "1024",
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A GET of `target` with `n` header fields in all (Host included). */
function withHeaders(target: string, n: number, last = ""): string {
  let h = `GET ${target} HTTP/1.1\r\nHost: docker\r\n`;
  for (let i = 1; i < n; i++) h += `X-H${i}: v\r\n`;
  return `${h}${last}\r\n`;
}

describe("limit settings", () => {
  it("have documented defaults and refuse invalid values by name", () => {
    const base = { PORTCULLIS_LISTEN: "tcp://127.0.0.1:0" };
    const limits = loadConfig(base).limits;
    assert.equal(limits.maxHeaderCount, 100);
    assert.equal(limits.maxConnections, 4096);
    assert.equal(limits.maxHeaderCount, DEFAULT_LIMITS.maxHeaderCount);
    assert.equal(loadConfig({ ...base, PORTCULLIS_MAX_CONNECTIONS: "10" }).limits.maxConnections, 10);
    for (const [name, value] of [
      ["PORTCULLIS_MAX_HEADER_COUNT", "many"],
      ["PORTCULLIS_MAX_HEADER_COUNT", "7"],
      ["PORTCULLIS_MAX_CONNECTIONS", "0"],
      ["PORTCULLIS_MAX_CONNECTIONS", "-1"],
    ] as const) {
      assert.throws(
        () => loadConfig({ ...base, [name]: value }),
        (e: unknown) => e instanceof ConfigError && e.message.includes(name) && e.message.includes(value),
        `${name}=${value}`,
      );
    }
  });
});

describeWithDockerd("limits", { image: false }, (engine) => {
  let tap: Tap | undefined;
  let proxy: TestProxy | undefined;
  before(async () => {
    tap = await startTap(engine.socketPath);
    proxy = await startProxy(tap.socketPath, { CONTAINERS: "1", EXEC: "1", POST: "1", ...LIMITS });
  });
  after(async () => {
    await proxy?.stop();
    await tap?.stop();
  });
  const target = () => ({ port: (proxy as TestProxy).port });
  /** Clears the tap and the log, runs `body`, then checks the daemon saw exactly `expected`. */
  const throughTap = async (expected: readonly string[], body: () => Promise<void>) => {
    const t = tap as Tap;
    t.reset();
    (proxy as TestProxy).logs.length = 0;
    await body();
    await assertOnlyAllowedReachedDaemon(t, (proxy as TestProxy).logs, expected);
  };

  it("header block over PORTCULLIS_MAX_HEADER_BYTES: 431, closed, nothing forwarded", async () => {
    await throughTap([], async () => {
      const ex = await rawExchange(
        target(),
        `GET ${LIST} HTTP/1.1\r\nHost: docker\r\nX-Big: ${"a".repeat(5000)}\r\n\r\n`,
        {
          responses: 1,
        },
      );
      assert.equal(ex.finals[0]?.status, 431);
      assert.equal(header(ex.finals[0] as never, "content-type"), "application/json");
      assert.match(messageOf(ex.finals[0] as never), /PORTCULLIS_MAX_HEADER_BYTES/);
      assert.ok(ex.closed, "connection closed");
    });
  });

  it("the request line counts against PORTCULLIS_MAX_HEADER_BYTES: a long target alone gets 431", async () => {
    // Just under the limit (line + Host): forwarded, the daemon answers 404 for the unknown container.
    const fits = `/v1.41/containers/${"a".repeat(3900)}/json`;
    await throughTap([`GET ${fits}`], async () => {
      const ex = await rawExchange(target(), `GET ${fits} HTTP/1.1\r\nHost: docker\r\n\r\n`, {
        responses: 1,
      });
      assert.equal(ex.finals[0]?.status, 404, ex.raw.toString("latin1").slice(0, 300));
    });
    // Over the limit with no header at all, and over it only with its headers: both 431.
    const long = `/v1.41/containers/${"a".repeat(4100)}/json`;
    const near = `/v1.41/containers/${"a".repeat(3900)}/json`;
    await throughTap([], async () => {
      for (const bytes of [
        `GET ${long} HTTP/1.1\r\n\r\n`,
        `GET ${near} HTTP/1.1\r\nHost: docker\r\nX-Pad: ${"p".repeat(200)}\r\n\r\n`,
      ]) {
        const ex = await rawExchange(target(), bytes, { responses: 1 });
        assert.equal(ex.finals[0]?.status, 431);
        assert.match(messageOf(ex.finals[0] as never), /PORTCULLIS_MAX_HEADER_BYTES/);
        assert.ok(ex.closed);
      }
    });
  });

  it("more header fields than PORTCULLIS_MAX_HEADER_COUNT: 431, closed, nothing forwarded (never truncated)", async () => {
    await throughTap([`GET ${LIST}`], async () => {
      const ok = await rawExchange(target(), withHeaders(LIST, 20), { responses: 1 });
      assert.equal(ok.finals[0]?.status, 200);
    });
    await throughTap([], async () => {
      // A Content-Length past the limit must not be dropped and the body then read as a request.
      const hidden = "Content-Length: 44\r\n";
      const body = "GET /v1.41/images/json HTTP/1.1\r\nHost: x\r\n\r\n";
      const ex = await rawExchange(target(), withHeaders(LIST, 21, hidden) + body, { responses: 1 });
      assert.equal(ex.finals.length, 1);
      assert.equal(ex.finals[0]?.status, 431);
      assert.equal(header(ex.finals[0] as never, "content-type"), "application/json");
      assert.match(
        messageOf(ex.finals[0] as never),
        /22 header fields, more than the limit of 20 \(PORTCULLIS_MAX_HEADER_COUNT\)/,
      );
      assert.ok(ex.closed, "connection closed");
      // The upgrade path too (attach with Upgrade).
      const attach = withHeaders(
        "/v1.41/containers/x/attach?stream=1",
        21,
        "Connection: Upgrade\r\nUpgrade: tcp\r\n",
      );
      const up = await rawExchange(target(), attach.replace("GET", "POST"), { responses: 1 });
      assert.equal(up.finals[0]?.status, 431);
      assert.ok(up.closed);
    });
    const warn = (proxy as TestProxy).logs.find((l) => l.status === 431);
    assert.ok(warn, "the refusal is logged");
  });

  it("with the default limits, 1,500 small header fields get 431 rather than Node's silent cut at ~1,000", async () => {
    const t = tap as Tap;
    const plain = await startProxy(t.socketPath, { CONTAINERS: "1" });
    try {
      t.reset();
      let bytes = `GET ${LIST} HTTP/1.1\r\nHost: docker\r\n`;
      for (let i = 0; i < 1500; i++) bytes += `a${i}:v\r\n`;
      const ex = await rawExchange({ port: plain.port }, `${bytes}\r\n`, { responses: 1 });
      assert.ok(bytes.length < DEFAULT_LIMITS.maxHeaderBytes, "fits the byte limit");
      assert.equal(ex.finals[0]?.status, 431);
      assert.match(messageOf(ex.finals[0] as never), /1501 header fields, more than the limit of 100/);
      await assertOnlyAllowedReachedDaemon(t, plain.logs, []);
    } finally {
      await plain.stop();
    }
  });

  it("a hijack body over PORTCULLIS_HIJACK_BODY_MAX_BYTES: 413, closed, nothing forwarded", async () => {
    await throughTap([], async () => {
      const body = JSON.stringify({ Detach: false, Tty: false, Pad: "p".repeat(1100) });
      for (const upgrade of ["Connection: Upgrade\r\nUpgrade: tcp\r\n", ""]) {
        const ex = await rawExchange(
          target(),
          `POST /v1.41/exec/portcullis-nonexistent/start HTTP/1.1\r\nHost: docker\r\n${upgrade}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
          { responses: 1 },
        );
        assert.equal(ex.finals[0]?.status, 413, upgrade);
        assert.match(messageOf(ex.finals[0] as never), /PORTCULLIS_HIJACK_BODY_MAX_BYTES/);
        assert.ok(ex.closed, "connection closed");
      }
    });
  });

  it("a head dribbled slower than PORTCULLIS_HEADERS_TIMEOUT_MS (slowloris): 408, closed, nothing forwarded", async () => {
    await throughTap([], async () => {
      const bytes = `GET ${LIST} HTTP/1.1\r\nHost: docker\r\nX-Slow: ${"s".repeat(40)}\r\n\r\n`;
      const started = Date.now();
      // One byte every 50 ms: the head would take ~4.5 s.
      const ex = await rawExchange(target(), "", {
        pieces: [...bytes],
        gapMs: 50,
        responses: 1,
        timeoutMs: 6_000,
      });
      const took = Date.now() - started;
      assert.equal(ex.finals[0]?.status, 408, ex.raw.toString("latin1"));
      assert.match(messageOf(ex.finals[0] as never), /PORTCULLIS_HEADERS_TIMEOUT_MS/);
      assert.ok(ex.closed, "connection closed");
      assert.ok(took >= 900 && took < 3_000, `refused after ${took} ms`);
    });
  });

  it("a connection that never sends a byte: 408 and closed after PORTCULLIS_HEADERS_TIMEOUT_MS", async () => {
    await throughTap([], async () => {
      const started = Date.now();
      const ex = await rawExchange(target(), "", { responses: 1, timeoutMs: 5_000 });
      const took = Date.now() - started;
      assert.equal(ex.finals[0]?.status, 408);
      assert.ok(ex.closed);
      assert.ok(took >= 900 && took < 3_000, `closed after ${took} ms`);
    });
  });

  it("an idle keep-alive connection is closed after PORTCULLIS_KEEPALIVE_TIMEOUT_MS", async () => {
    await throughTap([`GET ${LIST}`], async () => {
      const c = await RawConnection.open(target());
      try {
        c.write(`GET ${LIST} HTTP/1.1\r\nHost: docker\r\n\r\n`);
        const r = await c.readResponse();
        assert.equal(r.status, 200);
        const answered = Date.now();
        assert.equal(header(r, "keep-alive"), "timeout=1");
        while (!c.peerEnded && Date.now() - answered < 4_000) await sleep(20);
        const idle = Date.now() - answered;
        assert.ok(c.peerEnded, "the proxy closed the idle connection");
        // Node closes 1 s after the advertised `Keep-Alive: timeout=`, so that clients close first.
        assert.ok(idle >= 900 && idle < 3_000, `closed after ${idle} ms idle`);
      } finally {
        c.destroy();
      }
    });
  });

  it("over PORTCULLIS_MAX_CONNECTIONS: the extra connection is closed unanswered, the others keep working", async () => {
    const streams: RawConnection[] = [];
    try {
      await throughTap(
        [
          "GET /v1.41/events",
          "GET /v1.41/events",
          "GET /v1.41/events",
          "GET /v1.41/events",
          "GET /v1.41/_ping",
        ],
        async () => {
          for (let i = 0; i < 4; i++) {
            const s = await RawConnection.open(target());
            streams.push(s);
            s.write("GET /v1.41/events HTTP/1.1\r\nHost: docker\r\n\r\n");
            assert.equal((await s.readResponse({ stream: true })).status, 200);
          }
          // The fifth: accepted by the kernel, closed by portcullis before it reads anything.
          const fifth = net.connect({ host: "127.0.0.1", port: (proxy as TestProxy).port });
          const seen: string[] = [];
          let data = "";
          fifth.on("connect", () => {
            seen.push("connect");
            fifth.write(`GET ${LIST} HTTP/1.1\r\nHost: docker\r\n\r\n`);
          });
          fifth.on("data", (d: Buffer) => {
            data += d.toString("latin1");
          });
          fifth.on("end", () => seen.push("end"));
          fifth.on("error", (e: NodeJS.ErrnoException) => seen.push(e.code ?? "error"));
          await Promise.race([once(fifth, "close"), sleep(3_000)]);
          fifth.destroy();
          assert.equal(data, "", "no HTTP answer");
          assert.ok(
            seen.includes("connect") && (seen.includes("end") || seen.includes("ECONNRESET")),
            seen.join(","),
          );
          const logged = (proxy as TestProxy).logs.find((l) =>
            /PORTCULLIS_MAX_CONNECTIONS/.test(String(l.msg)),
          );
          assert.ok(logged, "the drop is logged");
          // One stream ends: a new connection is served again.
          (streams.shift() as RawConnection).destroy();
          await sleep(100);
          const ping = await rawExchange(target(), "GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n", {
            responses: 1,
          });
          assert.equal(ping.finals[0]?.status, 200);
          // Streams are logged when they end.
          for (const s of streams) s.destroy();
          await sleep(200);
        },
      );
    } finally {
      for (const s of streams) s.destroy();
    }
  });
});
