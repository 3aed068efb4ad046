import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSimpleHead } from "../../src/proxy/lane/request-head.js";
import { ChunkedScanner, DaemonProtocolError, parseResponseHead } from "../../src/proxy/lane/response.js";

const LIMITS = { maxHeadBytes: 8192, maxHeaderCount: 100 };

function parse(text: string) {
  return parseSimpleHead(Buffer.from(text, "latin1"), LIMITS);
}

function head(text: string) {
  const r = parse(text);
  assert.equal(r.kind, "head", `expected a simple head: ${JSON.stringify(text)}`);
  return (r as Extract<typeof r, { kind: "head" }>).head;
}

describe("the fast lane takes only canonical heads, with at most a Content-Length body", () => {
  it("reads a Go client's GET: target as sent, headers to forward, nothing hop-by-hop", () => {
    const text =
      "GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/28\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nAuthorization: Bearer s3cret\r\n\r\n";
    const h = head(text);
    assert.equal(h.method, "GET");
    assert.equal(h.target, "/v1.41/containers/json?all=1");
    assert.equal(h.forwardLines, "Host: api.moby.localhost\r\nUser-Agent: Docker-Client/28\r\n");
    assert.equal(h.authorization, "Bearer s3cret");
    assert.equal(h.hasHost, true);
    assert.equal(h.close, false);
    assert.equal(h.length, text.length);
  });

  it("reads the Content-Length of a body-carrying method and forwards it", () => {
    const h = head("POST /v1.41/images/load?quiet=1 HTTP/1.1\r\nContent-Length: 0042\r\n\r\n");
    assert.equal(h.method, "POST");
    assert.equal(h.bodyLength, 42);
    assert.equal(h.forwardLines, "Content-Length: 0042\r\n");
    assert.equal(head("DELETE /v1.41/containers/x HTTP/1.1\r\n\r\n").bodyLength, 0);
  });

  it("stops at the blank line: the bytes after it are the next request", () => {
    const text = "HEAD /_ping HTTP/1.1\r\nHost: x\r\n\r\n";
    const h = head(`${text}GET /_ping HTTP/1.1\r\n\r\n`);
    assert.equal(h.method, "HEAD");
    assert.equal(h.length, text.length);
  });

  it("accepts a head without header fields and notes Connection: close", () => {
    assert.equal(head("GET /_ping HTTP/1.1\r\n\r\n").hasHost, false);
    assert.equal(head("GET /_ping HTTP/1.1\r\nConnection: Keep-Alive, close\r\n\r\n").close, true);
  });

  it("waits for the rest of a head that has not all arrived", () => {
    assert.equal(parse("GET /_ping HTTP/1.1\r\nHost: x\r\n").kind, "incomplete");
  });

  it("leaves everything else to Node's parser", () => {
    const others = [
      "POST /v1.41/containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /v1.41/images/load HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
      "POST /v1.41/images/load HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
      "POST /v1.41/images/load HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}",
      "GET /_ping HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
      "PATCH /v1.41/containers/x HTTP/1.1\r\n\r\n",
      "OPTIONS /_ping HTTP/1.1\r\n\r\n",
      "GET /_ping HTTP/1.0\r\n\r\n",
      "GET /_ping HTTP/1.1 \r\n\r\n",
      "GET http://docker/_ping HTTP/1.1\r\n\r\n",
      "GET * HTTP/1.1\r\n\r\n",
      "get /_ping HTTP/1.1\r\n\r\n",
      "GET /_ping HTTP/1.1\nHost: x\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nContent-Type: a\r\ncontent-type: b\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nConnection: x-secret\r\nX-Secret: 1\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nX : a\r\n\r\n",
      "GET /_ping HTTP/1.1\r\n: a\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nX: caf\xe9\r\n\r\n",
      "GET /_ping HTTP/1.1\r\nX: a\x00b\r\n\r\n",
      "GET /caf\xe9 HTTP/1.1\r\n\r\n",
      "GET /a\tb HTTP/1.1\r\n\r\n",
    ];
    for (const text of others) assert.equal(parse(text).kind, "other", JSON.stringify(text));
  });

  it("leaves heads over the byte or field limits to Node, which answers 431", () => {
    assert.equal(parse(`GET /_ping HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`).kind, "other");
    assert.equal(parse(`GET /_ping HTTP/1.1\r\nX: ${"a".repeat(9000)}`).kind, "other");
    const many = Array.from({ length: 101 }, (_, i) => `X-${i}: 1\r\n`).join("");
    assert.equal(parse(`GET /_ping HTTP/1.1\r\n${many}\r\n`).kind, "other");
  });
});

function responseHead(text: string, headRequest = false, clientCloses = false) {
  return parseResponseHead(Buffer.from(text, "latin1"), headRequest, clientCloses);
}

describe("the fast lane follows the daemon's framing", () => {
  it("relays dockerd's head untouched and reads its Content-Length", () => {
    const text =
      "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\n";
    const h = responseHead(text);
    assert.equal(h.status, 200);
    assert.deepEqual(h.framing, { kind: "length", length: 2 });
    assert.equal(h.relayed.toString("latin1"), text);
    assert.equal(h.daemonCloses, false);
  });

  it("relays chunked answers in their own framing", () => {
    const h = responseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert.deepEqual(h.framing, { kind: "chunked" });
    assert.match(h.relayed.toString("latin1"), /Transfer-Encoding: chunked/);
  });

  it("removes hop-by-hop fields and those Connection names, and passes on a close", () => {
    const h = responseHead(
      "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nContent-Length: 0\r\n\r\n",
    );
    assert.equal(h.daemonCloses, true);
    assert.equal(h.relayed.toString("latin1"), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  });

  it("tells the client to close when the answer ends with the connection or the client asked", () => {
    assert.match(
      responseHead("HTTP/1.1 200 OK\r\n\r\n").relayed.toString("latin1"),
      /\r\nConnection: close\r\n\r\n$/,
    );
    const asked = responseHead("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true);
    assert.match(asked.relayed.toString("latin1"), /\r\nConnection: close\r\n\r\n$/);
  });

  it("never sends a client both Transfer-Encoding and Content-Length", () => {
    const h = responseHead("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert.deepEqual(h.framing, { kind: "chunked" });
    assert.doesNotMatch(h.relayed.toString("latin1"), /Content-Length/i);
  });

  it("knows the answers without a body", () => {
    assert.deepEqual(responseHead("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).framing, {
      kind: "none",
    });
    assert.deepEqual(responseHead("HTTP/1.1 204 No Content\r\n\r\n").framing, { kind: "none" });
    assert.deepEqual(responseHead("HTTP/1.1 304 Not Modified\r\n\r\n").framing, { kind: "none" });
  });

  it("fails closed on a head it cannot follow", () => {
    for (const text of [
      "HTTP/2 200\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBroken\r\n\r\n",
    ])
      assert.throws(() => responseHead(text), DaemonProtocolError, JSON.stringify(text));
  });
});

describe("ChunkedScanner finds the end of a chunked body however it is split", () => {
  const body = "5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n";

  it("in one piece, and says where the next message starts", () => {
    const s = new ChunkedScanner();
    assert.equal(s.scan(Buffer.from(`${body}HTTP/1.1`)), body.length);
  });

  it("split at every byte", () => {
    for (let cut = 1; cut < body.length; cut++) {
      const s = new ChunkedScanner();
      assert.equal(s.scan(Buffer.from(body.slice(0, cut))), -1, `cut ${cut}`);
      assert.equal(s.scan(Buffer.from(body.slice(cut))), body.length - cut, `cut ${cut}`);
    }
  });

  it("from an offset (the body behind the head in one read)", () => {
    const buf = Buffer.from(`HEAD\r\n\r\n0\r\n\r\n`);
    assert.equal(new ChunkedScanner().scan(buf, 8), buf.length);
  });

  it("refuses framing it cannot follow", () => {
    for (const bad of ["x\r\n", "5\r\nhelloX", "5\nhello", "0\r\n\n", `${"f".repeat(13)}\r\n`])
      assert.throws(
        () => new ChunkedScanner().scan(Buffer.from(bad)),
        DaemonProtocolError,
        JSON.stringify(bad),
      );
  });
});
