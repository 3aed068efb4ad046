/**
 * Framing and smuggling on raw sockets: exact bytes go to portcullis, which sits in front of a
 * private dockerd through the byte tap (test/helpers/tap.ts). Every case is either answered with a
 * clear 4xx (and nothing reaches the daemon), or forwarded as exactly the allowed requests; the tap
 * proves it by parsing what the daemon actually received. A hidden or pipelined request that would
 * be denied must never reach the daemon.
 *
 * Policy for the cases: CONTAINERS=1 POST=1, so container routes are allowed and images/volumes are
 * not. `STOP` (a stop of a container that does not exist: dockerd answers 404) is the harmless
 * allowed request; `HIDDEN_*` are requests that must never be executed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";
import { type Bytes, header, httpRequest, messageOf, rawExchange, toBytes } from "../helpers/raw-http.js";
import { assertOnlyAllowedReachedDaemon, seenByDaemon, startTap, type Tap } from "../helpers/tap.js";

const ENV = { CONTAINERS: "1", POST: "1" };
const D = "portcullis-nonexistent";
const STOP_TARGET = `/v1.41/containers/${D}/stop`;
const STOP = `POST ${STOP_TARGET}`;
const LIST = "GET /v1.41/containers/json";
const PING = "GET /v1.41/_ping";
/** Denied (IMAGES is off). */
const HIDDEN_GET = "GET /v1.41/images/json HTTP/1.1\r\nHost: x\r\n\r\n";
/** Denied (VOLUMES is off); executed, it would create a volume the suite looks for at the end. */
const HIDDEN_POST =
  'POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{"Name":"smuggled"}';
/** Allowed: used where only a parser that mistakes a body for a request would forward it. */
const HIDDEN_ALLOWED = "GET /v1.41/containers/json?hidden=1 HTTP/1.1\r\nHost: x\r\n\r\n";

const stopHead = (headers: string) => `POST ${STOP_TARGET} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;
const chunk = (data: string) => `${Buffer.byteLength(data, "latin1").toString(16)}\r\n${data}\r\n`;

interface Case {
  readonly name: string;
  readonly bytes: Bytes;
  /** Final statuses the client must get, in order (1xx excluded). */
  readonly statuses: readonly number[];
  /** Exactly what the daemon must receive ("METHOD target"). */
  readonly daemon?: readonly string[];
  /** Or: the daemon receives at most these (the head may have left before the body turned out malformed). */
  readonly daemonAtMost?: readonly string[];
  /** The proxy must close the connection. */
  readonly closes?: boolean;
  /** Half-close after sending. */
  readonly end?: boolean;
  readonly methods?: readonly string[];
  readonly pieces?: readonly Bytes[];
  readonly env?: Record<string, string>;
  /** Extra checks on what the daemon received. */
  readonly check?: (tap: Tap, statuses: readonly number[]) => void;
}

const CASES: readonly Case[] = [
  // --- Content-Length and Transfer-Encoding
  {
    name: "Content-Length + Transfer-Encoding",
    bytes: `${stopHead("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")}0\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "two different Content-Length",
    bytes: `${stopHead("Content-Length: 4\r\nContent-Length: 5\r\n")}abcde`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "two equal Content-Length",
    bytes: `${stopHead("Content-Length: 4\r\nContent-Length: 4\r\n")}abcd`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Content-Length list",
    bytes: `${stopHead("Content-Length: 4, 4\r\n")}abcd`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Content-Length +4",
    bytes: `${stopHead("Content-Length: +4\r\n")}abcd`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Content-Length -1",
    bytes: stopHead("Content-Length: -1\r\n"),
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Content-Length 0x4",
    bytes: `${stopHead("Content-Length: 0x4\r\n")}abcd`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Content-Length overflow",
    bytes: `${stopHead("Content-Length: 99999999999999999999\r\n")}abcd`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Transfer-Encoding: identity, chunked is re-framed, one request",
    bytes: `${stopHead("Transfer-Encoding: identity, chunked\r\n")}${chunk(HIDDEN_GET)}0\r\n\r\n`,
    statuses: [404],
    daemon: [STOP],
    check: (tap) => {
      const r = tap.requests()[0];
      assert.ok(r);
      assert.equal(r.bodyLength, HIDDEN_GET.length, "the hidden request arrived as body bytes");
      const te = header(r, "transfer-encoding");
      assert.ok(te === undefined || te === "chunked", `the body is re-framed, not passed on as ${te}`);
    },
  },
  {
    name: "Transfer-Encoding: chunked, identity",
    bytes: `${stopHead("Transfer-Encoding: chunked, identity\r\n")}4\r\nabcd\r\n0\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Transfer-Encoding: xchunked",
    bytes: `${stopHead("Transfer-Encoding: xchunked\r\n")}4\r\nabcd\r\n0\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Transfer-Encoding twice",
    bytes: `${stopHead("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")}4\r\nabcd\r\n0\r\n\r\n`,
    statuses: [400],
    daemonAtMost: [STOP],
    closes: true,
  },
  // --- chunk sizes
  ...(
    [
      ["hex overflow", "fffffffffffffffff1\r\nabcd\r\n0\r\n\r\n"],
      ["negative", "-4\r\nabcd\r\n0\r\n\r\n"],
      ["0x prefix", "0x4\r\nabcd\r\n0\r\n\r\n"],
      ["trailing garbage", "4 zz\r\nabcd\r\n0\r\n\r\n"],
      ["data longer than the size", `2\r\nabcd\r\n0\r\n\r\n${HIDDEN_GET}`],
      ["Content-Length in the trailer", "4\r\nabcd\r\n0\r\nContent-Length: 99\r\n\r\n"],
      ["bare LF in the chunk framing", `4\nabcd\n0\n\n${HIDDEN_GET}`],
    ] as const
  ).map(
    ([what, body]): Case => ({
      name: `chunk: ${what}`,
      bytes: `${stopHead("Transfer-Encoding: chunked\r\n")}${body}`,
      statuses: [400],
      daemonAtMost: [STOP],
      closes: true,
    }),
  ),
  {
    name: "chunk extensions are accepted and stripped",
    bytes: `${stopHead("Transfer-Encoding: chunked\r\n")}4;foo=bar\r\nabcd\r\n0;x\r\n\r\n`,
    statuses: [404],
    daemon: [STOP],
    check: (tap) => assert.equal(tap.requests()[0]?.bodyLength, 4),
  },
  // --- header syntax
  {
    name: "obs-fold",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "bare LF line ends",
    bytes: `${LIST} HTTP/1.1\nHost: x\n\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "bare CR line ends",
    bytes: `${LIST} HTTP/1.1\rHost: x\r\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "space before the colon",
    bytes: `${LIST} HTTP/1.1\r\nHost : x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "space before a header name",
    bytes: `${stopHead(" Content-Length: 4\r\n")}abcd`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "NUL in a header value",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "DEL in a header value",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "empty header name",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  // --- header injection
  {
    name: "CR inside a header value",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nX-A: a\r${HIDDEN_GET}`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "LF inside a header value",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nX-A: a\n${HIDDEN_GET}`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "encoded CRLF in the target",
    bytes: `GET /v1.41/containers/json%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
  },
  {
    name: "two Host headers",
    bytes: `${LIST} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`,
    statuses: [400],
    daemon: [],
  },
  {
    name: "headers named in Connection are dropped",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\r\n`,
    statuses: [200],
    daemon: [LIST],
    check: (tap) => {
      const r = tap.requests()[0];
      assert.ok(r);
      assert.equal(header(r, "x-secret"), undefined);
      assert.equal(header(r, "keep-alive"), undefined);
    },
  },
  // --- requests hidden in bodies, and pipelining
  {
    name: "a request hidden in an allowed body stays body",
    bytes: `${stopHead(`Content-Length: ${HIDDEN_POST.length}\r\n`)}${HIDDEN_POST}`,
    statuses: [404],
    daemon: [STOP],
    check: (tap) => assert.equal(tap.requests()[0]?.bodyLength, HIDDEN_POST.length),
  },
  {
    name: "a request hidden in an allowed chunked body stays body",
    bytes: `${stopHead("Transfer-Encoding: chunked\r\n")}${chunk(HIDDEN_POST)}0\r\n\r\n`,
    statuses: [404],
    daemon: [STOP],
    check: (tap) => assert.equal(tap.requests()[0]?.bodyLength, HIDDEN_POST.length),
  },
  {
    name: "bytes beyond Content-Length are the next request, and are checked",
    bytes: `${stopHead("Content-Length: 4\r\n")}abcd${HIDDEN_POST}`,
    statuses: [404, 403],
    daemon: [STOP],
  },
  {
    name: "pipelined requests after allowed ones are each checked",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\n\r\nGET /v1.41/version HTTP/1.1\r\nHost: x\r\n\r\n${HIDDEN_GET}${PING} HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [200, 200, 403, 200],
    daemon: [LIST, "GET /v1.41/version", PING],
  },
  {
    name: "a request pipelined after a denied one (no body) is checked on its own",
    bytes: `${HIDDEN_GET}${LIST} HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [403, 200],
    daemon: [LIST],
  },
  {
    name: "a denied POST's body is never parsed as a request",
    bytes: `POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: ${HIDDEN_ALLOWED.length}\r\n\r\n${HIDDEN_ALLOWED}`,
    statuses: [403],
    daemon: [],
    closes: true,
  },
  {
    name: "a denied POST's chunked body is never parsed as a request",
    bytes: `POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(HIDDEN_ALLOWED)}0\r\n\r\n${HIDDEN_ALLOWED}`,
    statuses: [403],
    daemon: [],
    closes: true,
  },
  {
    name: "a denied POST with a body and Connection: keep-alive still closes",
    bytes: `POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}${HIDDEN_ALLOWED}`,
    statuses: [403],
    daemon: [],
    closes: true,
  },
  {
    name: "a denied POST whose body comes later",
    bytes: "",
    pieces: [
      `POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: ${HIDDEN_ALLOWED.length}\r\n\r\n`,
      HIDDEN_ALLOWED,
    ],
    statuses: [403],
    daemon: [],
    closes: true,
  },
  // --- Upgrade and Expect
  {
    name: "Connection: Upgrade on a non-hijack route",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n${PING} HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Connection: Upgrade on create, body in the upgrade head",
    bytes: `POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "Upgrade without Connection: Upgrade is an ordinary request, Upgrade stripped",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\n\r\n`,
    statuses: [200],
    daemon: [LIST],
    check: (tap) => assert.equal(header(tap.requests()[0] ?? { headers: [] }, "upgrade"), undefined),
  },
  {
    name: "Expect: 100-continue on an allowed POST",
    bytes: `${stopHead("Expect: 100-continue\r\nContent-Length: 4\r\n")}abcd`,
    statuses: [404],
    daemon: [STOP],
    check: (tap) => assert.equal(header(tap.requests()[0] ?? { headers: [] }, "expect"), undefined),
  },
  {
    name: "Expect: 100-continue on a denied POST",
    bytes: `POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${HIDDEN_ALLOWED.length}\r\n\r\n${HIDDEN_ALLOWED}`,
    statuses: [403],
    daemon: [],
    closes: true,
  },
  {
    name: "Expect: something else",
    bytes: `${stopHead("Expect: 999-no\r\nContent-Length: 4\r\n")}abcd`,
    statuses: [417],
    daemon: [],
  },
  // --- versions and methods
  { name: "HTTP/1.0", bytes: `${LIST} HTTP/1.0\r\n\r\n`, statuses: [200], daemon: [LIST], closes: true },
  {
    name: "HTTP/1.0 keep-alive, pipelined",
    bytes: `${LIST} HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /v1.41/images/json HTTP/1.0\r\n\r\n`,
    statuses: [200, 403],
    daemon: [LIST],
  },
  { name: "HTTP/0.9", bytes: `${LIST}\r\n`, statuses: [400], daemon: [], end: true },
  {
    name: "HTTP/1.2",
    bytes: `${LIST} HTTP/1.2\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  // llhttp takes the version digits as given; the request is re-sent as HTTP/1.1 and the connection closed
  {
    name: "HTTP/2.0 request line",
    bytes: `${LIST} HTTP/2.0\r\nHost: x\r\n\r\n`,
    statuses: [200],
    daemon: [LIST],
    closes: true,
  },
  {
    name: "HTTP/2 preface",
    bytes: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "lowercase method",
    bytes: `get /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "mixed-case method",
    bytes: `Get /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "unknown method",
    bytes: `FOO /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "TRACE",
    bytes: `TRACE /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [404],
    daemon: [],
  },
  {
    name: "CONNECT, then a pipelined request",
    bytes: `CONNECT localhost:2375 HTTP/1.1\r\nHost: x\r\n\r\n${LIST} HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "absolute-form",
    bytes: `GET http://x/v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
  },
  {
    name: "absolute-form pipelined behind an allowed request",
    bytes: `${PING} HTTP/1.1\r\nHost: x\r\n\r\nGET http://x/v1.41/images/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [200, 400],
    daemon: [PING],
  },
  {
    name: "tab in the request line",
    bytes: `GET\t/v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [400],
    daemon: [],
    closes: true,
  },
  {
    name: "empty lines before the request",
    bytes: `\r\n\r\n${LIST} HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [200],
    daemon: [LIST],
  },
  // --- size
  {
    name: "oversized header block",
    bytes: `${LIST} HTTP/1.1\r\nHost: x\r\nX-Big: ${"A".repeat(20_000)}\r\n\r\n`,
    statuses: [431],
    daemon: [],
    closes: true,
  },
  {
    name: "oversized request-target",
    bytes: `GET /v1.41/containers/${"a".repeat(20_000)}/json HTTP/1.1\r\nHost: x\r\n\r\n`,
    statuses: [431],
    daemon: [],
    closes: true,
  },
  {
    name: "a request dribbled one byte at a time",
    bytes: "",
    pieces: [...`${PING} HTTP/1.1\r\nHost: x\r\n\r\n`],
    statuses: [200],
    daemon: [PING],
  },
];

describeWithDockerd("framing and smuggling through portcullis", { image: false }, (engine) => {
  let tap: Tap | undefined;
  before(async () => {
    tap = await startTap(engine.socketPath);
  });
  after(async () => {
    await tap?.stop();
  });

  describe("the tap itself", () => {
    it("relays bytes unchanged and records keep-alive requests with their bodies", async () => {
      assert.ok(tap);
      tap.reset();
      const bytes = Buffer.concat([
        httpRequest("GET", "/v1.41/_ping"),
        httpRequest("POST", STOP_TARGET, [["Content-Type", "application/json"]], "{}"),
        toBytes(`${stopHead("Transfer-Encoding: chunked\r\n")}3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n`),
        httpRequest("HEAD", "/_ping"),
        httpRequest("GET", "/v1.41/containers/json"),
      ]);
      const viaTap = await rawExchange({ path: tap.socketPath }, bytes, {
        responses: 5,
        methods: ["GET", "POST", "POST", "HEAD", "GET"],
      });
      const direct = await rawExchange({ path: engine.socketPath }, bytes, {
        responses: 5,
        methods: ["GET", "POST", "POST", "HEAD", "GET"],
      });
      assert.deepEqual(
        viaTap.finals.map((r) => r.status),
        [200, 404, 404, 200, 200],
      );
      assert.deepEqual(
        viaTap.finals.map((r) => r.body.toString()),
        direct.finals.map((r) => r.body.toString()),
      );
      await tap.quiet();
      const recs = tap.requests();
      assert.deepEqual(
        recs.map((r) => [r.conn, r.seq, r.method, r.target, r.framing, r.bodyLength, r.status]),
        [
          [recs[0]?.conn, 0, "GET", "/v1.41/_ping", "none", 0, 200],
          [recs[0]?.conn, 1, "POST", STOP_TARGET, "length", 2, 404],
          [recs[0]?.conn, 2, "POST", STOP_TARGET, "chunked", 5, 404],
          [recs[0]?.conn, 3, "HEAD", "/_ping", "none", 0, 200],
          [recs[0]?.conn, 4, "GET", "/v1.41/containers/json", "none", 0, 200],
        ],
      );
      assert.deepEqual(tap.errors(), []);
    });

    it("stops parsing once the daemon answers with a close-delimited (hijack) response", async () => {
      assert.ok(tap);
      tap.reset();
      // dockerd hijacks attach and writes a raw 404: nothing after it is read as a request
      const bytes = `POST /v1.41/containers/${D}/attach?stream=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n${HIDDEN_POST}`;
      const ex = await rawExchange({ path: tap.socketPath }, bytes, { responses: 1 });
      assert.equal(ex.finals[0]?.status, 404);
      assert.match(ex.finals[0]?.body.toString() ?? "", /No such container/);
      assert.equal(ex.closed, true);
      await tap.quiet();
      assert.deepEqual(seenByDaemon(tap), [`POST /v1.41/containers/${D}/attach?stream=1`]);
      const conn = tap.connections().find((c) => c.hijacked);
      assert.ok(conn, "the connection is marked as a tunnel");
      assert.equal(conn.tunnelToDaemon, HIDDEN_POST.length);
    });

    it("passes a half-close through and waits for the daemon's answer", async () => {
      assert.ok(tap);
      tap.reset();
      const ex = await rawExchange({ path: tap.socketPath }, httpRequest("GET", "/v1.41/version"), {
        end: true,
      });
      assert.equal(ex.finals[0]?.status, 200);
      assert.equal(ex.closed, true);
      assert.deepEqual(seenByDaemon(tap), ["GET /v1.41/version"]);
    });
  });

  describe("hostile framing", () => {
    for (const c of CASES) {
      it(c.name, { timeout: 15_000 }, async () => {
        assert.ok(tap);
        tap.reset();
        const proxy: TestProxy = await startProxy(tap.socketPath, c.env ?? ENV);
        try {
          const ex = await rawExchange({ port: proxy.port }, c.bytes, {
            responses: c.statuses.length,
            settleMs: 250,
            timeoutMs: 4_000,
            ...(c.end ? { end: true } : {}),
            ...(c.methods ? { methods: c.methods } : {}),
            ...(c.pieces ? { pieces: c.pieces, gapMs: 2 } : {}),
          });
          const statuses = ex.finals.map((r) => r.status);
          assert.deepEqual(
            statuses,
            c.statuses,
            `answers: ${ex.finals.map((r) => `${r.status} ${messageOf(r)}`).join(" | ")}`,
          );
          for (const r of ex.finals) {
            if (r.status >= 400 && r.status !== 417 && r.body.length > 0) {
              assert.equal(
                header(r, "content-type"),
                "application/json",
                "denials use Docker's error format",
              );
              assert.ok(messageOf(r).length > 0);
            }
          }
          if (c.closes) assert.equal(ex.closed, true, "the proxy closes the connection");
          await assertOnlyAllowedReachedDaemon(tap, proxy.logs, c.daemon, c.name);
          if (c.daemonAtMost) {
            const extra = seenByDaemon(tap).filter((s) => !c.daemonAtMost?.includes(s));
            assert.deepEqual(extra, [], "the daemon received more than the allowed head");
            assert.ok(seenByDaemon(tap).length <= c.daemonAtMost.length);
          }
          c.check?.(tap, statuses);
        } finally {
          await proxy.stop();
          await tap.quiet(50, 2_000);
        }
      });
    }

    it("no hidden request was ever executed", async () => {
      const ex = await rawExchange({ path: engine.socketPath }, httpRequest("GET", "/v1.41/volumes"), {
        responses: 1,
      });
      assert.equal(ex.finals[0]?.status, 200);
      assert.doesNotMatch(ex.finals[0]?.body.toString() ?? "", /smuggled/);
    });
  });
});
