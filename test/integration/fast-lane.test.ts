/**
 * The fast lane against a scripted fake daemon: what it relays itself, what it hands to Node's path,
 * and how it fails when the daemon misbehaves.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { startProxy, type TestProxy } from "../helpers/proxy.js";
import { header, messageOf, RawConnection, rawExchange } from "../helpers/raw-http.js";

interface DaemonRequest {
  readonly line: string;
  readonly head: string;
  readonly body: Buffer;
  /** Which daemon connection it came on (1, 2, ...). */
  readonly connection: number;
}

type Answer = (req: DaemonRequest, socket: net.Socket) => void;

/** A daemon that parses Content-Length requests and answers each with `answer`. */
function fakeDaemon(path: string) {
  const seen: DaemonRequest[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let answer: Answer = (_req, socket) => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
  const server = net.createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buf = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.toString("latin1", 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const req = {
          line: head.split("\r\n")[0] as string,
          head,
          body: buf.subarray(end + 4, end + 4 + length),
          connection,
        };
        buf = buf.subarray(end + 4 + length);
        seen.push(req);
        answer(req, socket);
      }
    });
  });
  return {
    seen,
    listen: () => new Promise<void>((resolve) => server.listen(path, resolve)),
    answerWith(a: Answer) {
      answer = a;
    },
    reset() {
      seen.length = 0;
      connections = 0;
      for (const s of sockets) s.destroy();
      answer = (_req, socket) => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe("the fast lane", () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-lane-"));
  const daemon = fakeDaemon(join(dir, "daemon.sock"));
  let proxy: TestProxy;
  const target = () => ({ port: proxy.port });

  before(async () => {
    await daemon.listen();
    proxy = await startProxy(join(dir, "daemon.sock"), { CONTAINERS: "1", IMAGES: "1", POST: "1" });
  });
  beforeEach(() => daemon.reset());
  after(async () => {
    await proxy.stop();
    daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("relays an allowed GET byte for byte and keeps both connections open", async () => {
    const ex = await rawExchange(
      target(),
      "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nAuthorization: Bearer x\r\nKeep-Alive: 5\r\n\r\n".repeat(
        2,
      ),
      { responses: 2 },
    );
    assert.deepEqual(
      ex.finals.map((r) => [r.status, r.body.toString(), header(r, "connection"), header(r, "keep-alive")]),
      [
        [200, "OK", "keep-alive", "timeout=60"],
        [200, "OK", "keep-alive", "timeout=60"],
      ],
    );
    assert.equal(ex.closed, false);
    assert.deepEqual(
      daemon.seen.map((r) => [r.head, r.connection]),
      [
        ["GET /v1.41/containers/json HTTP/1.1\r\nHost: docker", 1],
        ["GET /v1.41/containers/json HTTP/1.1\r\nHost: docker", 1],
      ],
    );
  });

  it("hands a pipelined denied request to Node's path, which refuses it: the daemon never sees it", async () => {
    const ex = await rawExchange(
      target(),
      "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n" +
        "GET /v1.41/secrets HTTP/1.1\r\nHost: d\r\n\r\n" +
        "GET /v1.41/images/json HTTP/1.1\r\nHost: d\r\n\r\n",
      { responses: 3 },
    );
    assert.deepEqual(
      ex.finals.map((r) => r.status),
      [200, 403, 200],
    );
    assert.match(messageOf(ex.finals[1] as never), /denied SecretList/);
    assert.deepEqual(
      daemon.seen.map((r) => r.line),
      ["GET /v1.41/containers/json HTTP/1.1", "GET /v1.41/images/json HTTP/1.1"],
    );
  });

  it("a denied request with a body behind an allowed one: refused, the connection closed, nothing after it read", async () => {
    const ex = await rawExchange(
      target(),
      "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n" +
        "POST /v1.41/secrets/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}" +
        "GET /v1.41/images/json HTTP/1.1\r\nHost: d\r\n\r\n",
      { responses: 3, timeoutMs: 2_000 },
    );
    assert.deepEqual(
      ex.finals.map((r) => r.status),
      [200, 403],
    );
    assert.equal(ex.closed, true);
    assert.deepEqual(
      daemon.seen.map((r) => r.line),
      ["GET /v1.41/containers/json HTTP/1.1"],
    );
  });

  it("relays a Content-Length body as sent", async () => {
    const body = Buffer.alloc(300_000, "t");
    const ex = await rawExchange(
      target(),
      [`POST /v1.41/images/load?quiet=1 HTTP/1.1\r\nHost: d\r\nContent-Length: ${body.length}\r\n\r\n`, body],
      { responses: 1 },
    );
    assert.equal(ex.finals[0]?.status, 200);
    const load = daemon.seen.find((r) => r.line.startsWith("POST"));
    assert.ok(load);
    assert.equal(load.body.equals(body), true);
  });

  it("retries a GET once when the daemon closed the kept-alive connection meanwhile", async () => {
    // The race a keep-alive pool lives with: the daemon drops an idle connection just as a request is sent.
    daemon.answerWith((req, socket) => {
      if (req.connection === 1 && req.line.includes("images")) socket.destroy();
      else socket.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nSAFE");
    });
    const first = await rawExchange(target(), "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n", {
      responses: 1,
    });
    assert.equal(first.finals[0]?.status, 200);
    const second = await rawExchange(target(), "GET /v1.41/images/json HTTP/1.1\r\nHost: d\r\n\r\n", {
      responses: 1,
    });
    assert.equal(second.finals[0]?.body.toString(), "SAFE");
    assert.deepEqual(
      daemon.seen.map((r) => [r.line, r.connection]),
      [
        ["GET /v1.41/containers/json HTTP/1.1", 1],
        ["GET /v1.41/images/json HTTP/1.1", 1],
        ["GET /v1.41/images/json HTTP/1.1", 2],
      ],
    );
  });

  it("answers a JSON 502 when the daemon closes without answering, and never resends a POST", async () => {
    // a kept-alive daemon connection first: a GET on it would be sent again, a POST never is
    await rawExchange(target(), "GET /v1.41/images/json HTTP/1.1\r\nHost: d\r\n\r\n", { responses: 1 });
    daemon.answerWith((_req, socket) => socket.destroy());
    const ex = await rawExchange(
      target(),
      "POST /v1.41/containers/abc/start HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n",
      { responses: 1 },
    );
    assert.equal(ex.finals[0]?.status, 502);
    assert.equal(header(ex.finals[0] as never, "content-type"), "application/json");
    assert.match(messageOf(ex.finals[0] as never), /could not reach the Docker daemon/);
    assert.deepEqual(
      daemon.seen.map((r) => r.line),
      ["GET /v1.41/images/json HTTP/1.1", "POST /v1.41/containers/abc/start HTTP/1.1"],
    );
  });

  it("relays chunked and close-delimited answers in their own framing", async () => {
    daemon.answerWith((req, socket) => {
      if (req.line.includes("containers"))
        socket.write(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        );
      else socket.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
    });
    const chunked = await rawExchange(target(), "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n", {
      responses: 1,
    });
    assert.equal(chunked.finals[0]?.body.toString(), "abcde");
    assert.equal(header(chunked.finals[0] as never, "transfer-encoding"), "chunked");
    const closeDelimited = await rawExchange(target(), "GET /v1.41/images/json HTTP/1.1\r\nHost: d\r\n\r\n", {
      responses: 1,
    });
    assert.equal(closeDelimited.finals[0]?.body.toString(), "until close");
    assert.equal(header(closeDelimited.finals[0] as never, "connection"), "close");
    assert.equal(closeDelimited.closed, true);
  });

  it("gives the client no body for HEAD, whatever Content-Length says", async () => {
    daemon.answerWith((_req, socket) => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"));
    const ex = await rawExchange(
      target(),
      "HEAD /_ping HTTP/1.1\r\nHost: d\r\n\r\nHEAD /_ping HTTP/1.1\r\nHost: d\r\n\r\n",
      {
        responses: 2,
        methods: ["HEAD", "HEAD"],
      },
    );
    assert.deepEqual(
      ex.finals.map((r) => r.status),
      [200, 200],
    );
    assert.equal(ex.rest.length, 0);
  });

  it("fails closed on framing it cannot follow: a 502 before the head, a cut connection after it", async () => {
    daemon.answerWith((req, socket) => {
      if (req.line.includes("containers"))
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nOK");
      else {
        socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc");
        setTimeout(() => socket.write("X"), 50);
      }
    });
    const before = await rawExchange(target(), "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n", {
      responses: 1,
    });
    assert.equal(before.finals[0]?.status, 502);
    assert.match(messageOf(before.finals[0] as never), /two different Content-Length/);
    const afterHead = await rawExchange(target(), "GET /v1.41/images/json HTTP/1.1\r\nHost: d\r\n\r\n", {
      timeoutMs: 2_000,
    });
    assert.equal(afterHead.closed, true);
    assert.equal(afterHead.finals.length, 0, "the client never sees a complete answer");
  });

  it("closes the daemon connection of a stream whose client hangs up", async () => {
    let daemonSide: net.Socket | undefined;
    daemon.answerWith((_req, socket) => {
      daemonSide = socket;
      socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    });
    const client = await RawConnection.open(target());
    client.write("GET /v1.41/events HTTP/1.1\r\nHost: d\r\n\r\n");
    assert.equal((await client.readResponse({ stream: true })).status, 200);
    client.destroy();
    const deadline = Date.now() + 2_000;
    while (daemonSide !== undefined && !daemonSide.destroyed && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(daemonSide?.destroyed, true, "the daemon connection was closed");
  });
});

describe("a hijack route's plain answer", () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-hijack-answer-"));
  const daemon = fakeDaemon(join(dir, "daemon.sock"));
  let proxy: TestProxy;

  before(async () => {
    await daemon.listen();
    proxy = await startProxy(join(dir, "daemon.sock"), { CONTAINERS: "1", POST: "1" });
  });
  after(async () => {
    await proxy.stop();
    daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ends at the daemon's last chunk, even when the terminator is split across reads", async () => {
    daemon.answerWith((_req, socket) => {
      socket.write(
        'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1b\r\n{"message":"No such thing"}\r\n0\r\n',
      );
      setTimeout(() => socket.write("\r\n"), 50); // and the daemon keeps the connection open
    });
    const started = Date.now();
    const ex = await rawExchange(
      { port: proxy.port },
      "POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: d\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
      { timeoutMs: 3_000 },
    );
    assert.equal(ex.finals[0]?.status, 404);
    assert.equal(messageOf(ex.finals[0] as never), "No such thing");
    assert.equal(ex.closed, true);
    assert.ok(Date.now() - started < 2_000, "closed once the answer was complete, not at the timeout");
  });
});
