/**
 * Hijack safety: attach, exec start and attach/ws through portcullis, in front of a private dockerd
 * through the byte tap.
 *
 *   - A failed or denied upgrade never lets a pipelined request through: the tap sees only the first
 *     request, and the second is never executed (no container appears).
 *   - A hijack sent without Upgrade (dockerd's raw 200 form) takes the connection over: whatever
 *     Node's parser reads behind it is refused, never forwarded.
 *   - Real hijacks work: bytes both ways, half-close (FIN passed on, output still delivered), bytes
 *     sent before the 101 are held and then delivered, the raw 200 form, the WebSocket attach
 *     (denied as a write without POST=1, 101 with it).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { runDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";
import {
  type Bytes,
  demux,
  header,
  httpRequest,
  messageOf,
  RawConnection,
  type RawTarget,
  rawExchange,
} from "../helpers/raw-http.js";
import { assertOnlyAllowedReachedDaemon, seenByDaemon, startTap, type Tap } from "../helpers/tap.js";

const D = "portcullis-nonexistent";
const WRITE = { CONTAINERS: "1", POST: "1" };
const WRITE_EXEC = { CONTAINERS: "1", POST: "1", EXEC: "1" };

/** A container create that, if it ever ran, leaves a container with this name behind. */
function smuggledCreate(name: string, image: string): string {
  const body = JSON.stringify({ Image: image, Cmd: ["true"] });
  return `POST /v1.41/containers/create?name=${name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
}
const HIDDEN_LIST = "GET /v1.41/containers/json?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n";
const HIDDEN_IMAGES = "GET /v1.41/images/json?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n";

const attachHead = (id: string, upgrade: boolean, query = "stream=1&stdin=1&stdout=1&stderr=1") =>
  `POST /v1.41/containers/${id}/attach?${query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n` +
  (upgrade ? "Connection: Upgrade\r\nUpgrade: tcp\r\n" : "") +
  "\r\n";

/** A call straight to the daemon (test setup: not through the proxy, so the tap never sees it). */
async function api(
  to: RawTarget,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const headers: [string, string][] = body === undefined ? [] : [["Content-Type", "application/json"]];
  const ex = await rawExchange(
    to,
    httpRequest(method, path, headers, body === undefined ? undefined : JSON.stringify(body)),
    {
      responses: 1,
      settleMs: 0,
      timeoutMs: 20_000,
    },
  );
  const r = ex.finals[0];
  assert.ok(r, `${method} ${path}: no answer`);
  const text = r.body.toString();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, json };
}

/** A masked client WebSocket frame (binary). */
function wsFrame(payload: string): Buffer {
  const data = Buffer.from(payload);
  const mask = randomBytes(4);
  const masked = Buffer.from(data.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x82, 0x80 | data.length]), mask, masked]);
}

/** Payloads of the unmasked server frames in `buf` (small frames only). */
function wsPayloads(buf: Buffer): string {
  let out = "";
  let at = 0;
  while (at + 2 <= buf.length) {
    const len = (buf[at + 1] as number) & 0x7f;
    if (len > 125 || at + 2 + len > buf.length) break;
    out += buf.subarray(at + 2, at + 2 + len).toString();
    at += 2 + len;
  }
  return out;
}

describeWithDockerd("hijack safety through portcullis", { image: true }, (engine) => {
  const daemon: RawTarget = { path: engine.socketPath };
  let tap: Tap | undefined;
  let catId = "";

  before(async () => {
    tap = await startTap(engine.socketPath);
    const r = await runDocker(engine.host, ["run", "-d", "-i", "--name", "hj-cat", engine.image, "cat"]);
    assert.equal(r.code, 0, r.stderr);
    catId = r.stdout.trim();
  });
  after(async () => {
    await tap?.stop();
  });

  /** Runs `body` against a fresh proxy (policy `env`) with a reset tap; stops the proxy whatever happens. */
  async function withProxy(
    env: Record<string, string>,
    body: (proxy: TestProxy, tap: Tap) => Promise<void>,
  ): Promise<void> {
    assert.ok(tap);
    await tap.quiet(50, 2_000);
    tap.reset();
    const proxy = await startProxy(tap.socketPath, env);
    try {
      await body(proxy, tap);
    } finally {
      await proxy.stop();
    }
  }

  async function containerExists(name: string): Promise<boolean> {
    return (await api(daemon, "GET", `/v1.41/containers/${name}/json`)).status === 200;
  }

  describe("a failed or denied upgrade never carries a second request", () => {
    const cases: {
      name: string;
      env: Record<string, string>;
      bytes: (image: string) => Bytes;
      status: number;
      daemon: string[];
      created?: string;
    }[] = [
      {
        name: "bogus attach upgrade (404, not 101) + pipelined create",
        env: WRITE,
        bytes: (image) => attachHead(D, true) + smuggledCreate("smuggled-1", image),
        status: 404,
        daemon: [`POST /v1.41/containers/${D}/attach?stream=1&stdin=1&stdout=1&stderr=1`],
        created: "smuggled-1",
      },
      {
        name: "bogus attach upgrade + pipelined allowed GET",
        env: WRITE,
        bytes: () => attachHead(D, true) + HIDDEN_LIST,
        status: 404,
        daemon: [`POST /v1.41/containers/${D}/attach?stream=1&stdin=1&stdout=1&stderr=1`],
      },
      {
        name: "bogus attach upgrade + pipelined denied GET",
        env: WRITE,
        bytes: () => attachHead(D, true) + HIDDEN_IMAGES,
        status: 404,
        daemon: [`POST /v1.41/containers/${D}/attach?stream=1&stdin=1&stdout=1&stderr=1`],
      },
      {
        name: "bogus attach without Upgrade (raw 404) + pipelined create",
        env: WRITE,
        bytes: (image) => attachHead(D, false) + smuggledCreate("smuggled-2", image),
        status: 404,
        daemon: [`POST /v1.41/containers/${D}/attach?stream=1&stdin=1&stdout=1&stderr=1`],
        created: "smuggled-2",
      },
      {
        name: "bogus exec start upgrade (JSON 404) + pipelined create",
        env: WRITE_EXEC,
        bytes: (image) =>
          `POST /v1.41/exec/${D}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n{"Detach":false,"Tty":false}${smuggledCreate("smuggled-3", image)}`,
        status: 404,
        daemon: [`POST /v1.41/exec/${D}/start`],
        created: "smuggled-3",
      },
      {
        name: "attach upgrade with Upgrade: h2c (404) + pipelined GET",
        env: WRITE,
        bytes: () =>
          `POST /v1.41/containers/${D}/attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n${HIDDEN_LIST}`,
        status: 404,
        daemon: [`POST /v1.41/containers/${D}/attach`],
      },
      {
        name: "denied attach upgrade (no POST=1) + pipelined allowed GET",
        env: { CONTAINERS: "1" },
        bytes: () => attachHead(D, true) + HIDDEN_LIST,
        status: 403,
        daemon: [],
      },
      {
        name: "denied attach without Upgrade + pipelined allowed GET",
        env: { CONTAINERS: "1" },
        bytes: () => attachHead(D, false) + HIDDEN_LIST,
        status: 403,
        daemon: [],
      },
      {
        name: "denied session upgrade (h2c) + pipelined allowed GET",
        env: { CONTAINERS: "1" },
        bytes: () =>
          `POST /v1.41/session HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nX-Docker-Expose-Session-Uuid: x\r\n\r\n${HIDDEN_LIST}`,
        status: 403,
        daemon: [],
      },
      {
        name: "upgrade with a chunked body is refused",
        env: WRITE,
        bytes: () =>
          `POST /v1.41/containers/${D}/attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${HIDDEN_LIST}`,
        status: 400,
        daemon: [],
      },
    ];
    for (const c of cases) {
      it(c.name, { timeout: 15_000 }, async () => {
        await withProxy(c.env, async (proxy, tap) => {
          const ex = await rawExchange({ port: proxy.port }, c.bytes(engine.image), {
            responses: 1,
            settleMs: 300,
            timeoutMs: 5_000,
          });
          assert.equal(
            ex.finals[0]?.status,
            c.status,
            `answer: ${ex.finals[0] ? messageOf(ex.finals[0]) : ex.raw.toString()}`,
          );
          assert.equal(ex.finals.length, 1, "exactly one answer");
          assert.equal(ex.closed, true, "the connection is closed after a failed upgrade");
          await assertOnlyAllowedReachedDaemon(tap, proxy.logs, c.daemon, c.name);
          if (c.created)
            assert.equal(await containerExists(c.created), false, "the pipelined create never ran");
        });
      });
    }

    it("a real raw-200 attach: what Node parses behind it is refused, not forwarded", {
      timeout: 15_000,
    }, async () => {
      await withProxy(WRITE, async (proxy, tap) => {
        const c = await RawConnection.open({ port: proxy.port });
        try {
          c.write(attachHead(catId, false) + smuggledCreate("smuggled-4", engine.image));
          const head = await c.readResponse({ stream: true });
          assert.equal(head.status, 200);
          assert.equal(header(head, "content-type"), "application/vnd.docker.raw-stream");
          await new Promise((r) => setTimeout(r, 300));
          c.destroy(); // a hijack's allow record is written when the session ends
          await assertOnlyAllowedReachedDaemon(tap, proxy.logs, [
            `POST /v1.41/containers/${catId}/attach?stream=1&stdin=1&stdout=1&stderr=1`,
          ]);
          const refused = proxy.logs.find((l) => l.reason === "pipelined-after-hijack");
          assert.ok(refused, "the pipelined request is logged as refused");
          assert.equal(refused.target, "/v1.41/containers/create?name=smuggled-4");
        } finally {
          c.destroy();
        }
        assert.equal(await containerExists("smuggled-4"), false);
      });
    });
  });

  describe("real hijacks work", () => {
    it("attach with Upgrade: 101, bytes both ways, half-close ends the session with all output", {
      timeout: 30_000,
    }, async () => {
      // like `docker run -i`: create with StdinOnce, attach, then start
      const created = await api(daemon, "POST", "/v1.41/containers/create?name=hj-once", {
        Image: engine.image,
        Cmd: ["sh", "-c", "cat; echo bye"],
        OpenStdin: true,
        StdinOnce: true,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const id = (created.json as { Id: string }).Id;
      await withProxy(WRITE, async (proxy, tap) => {
        const c = await RawConnection.open({ port: proxy.port });
        try {
          c.write(attachHead(id, true));
          const head = await c.readResponse({ stream: true });
          assert.equal(head.status, 101);
          assert.equal(head.reason, "UPGRADED");
          assert.equal(header(head, "upgrade"), "tcp");
          const started = await api(daemon, "POST", `/v1.41/containers/${id}/start`);
          assert.equal(started.status, 204);
          c.write("ping\n");
          const echoed = await c.readBytes((b) => demux(b).stdout.includes("ping\n"), 10_000);
          assert.equal(demux(echoed).stdout, "ping\n");
          c.write("more\n");
          c.end(); // FIN: cat sees EOF, prints the rest, the daemon closes
          const rest = await c.readToEnd(10_000);
          assert.equal(demux(rest).stdout, "more\nbye\n");
          await c.closed;
          await assertOnlyAllowedReachedDaemon(tap, proxy.logs, [
            `POST /v1.41/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1`,
          ]);
          const conn = tap.connections().find((x) => x.hijacked);
          assert.ok(conn);
          assert.equal(conn.tunnelToDaemon, "ping\nmore\n".length);
          assert.ok(conn.tunnelFromDaemon > 0);
          const rec = proxy.logs.find((l) => l.decision === "allow");
          assert.equal(rec?.tunnelled, true);
        } finally {
          c.destroy();
        }
      });
    });

    it("docker run -i through portcullis (the CLI half-closes stdin)", { timeout: 60_000 }, async () => {
      await withProxy(WRITE, async (proxy, tap) => {
        const r = await runDocker(
          proxy.host,
          ["run", "--rm", "-i", engine.image, "sh", "-c", "cat; echo done"],
          {
            input: "from-stdin\n",
            timeoutMs: 45_000,
          },
        );
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "from-stdin\ndone\n");
        await assertOnlyAllowedReachedDaemon(tap, proxy.logs);
        assert.ok(seenByDaemon(tap).some((s) => /^POST \/v[\d.]+\/containers\/[0-9a-f]+\/attach\?/.test(s)));
      });
    });

    it("exec start with Upgrade: the JSON body goes first, bytes sent before the 101 are held then delivered", {
      timeout: 20_000,
    }, async () => {
      const exec = await api(daemon, "POST", `/v1.41/containers/${catId}/exec`, {
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Cmd: ["sh", "-c", "read x; echo got-$x"],
      });
      assert.equal(exec.status, 201, JSON.stringify(exec.json));
      const execId = (exec.json as { Id: string }).Id;
      await withProxy(WRITE_EXEC, async (proxy, tap) => {
        const c = await RawConnection.open({ port: proxy.port });
        try {
          const body = '{"Detach":false,"Tty":false}';
          // head, body and stdin in one write: portcullis must hold "hello\n" until the daemon's 101
          c.write(
            `POST /v1.41/exec/${execId}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}hello\n`,
          );
          const head = await c.readResponse({ stream: true });
          assert.equal(head.status, 101);
          const out = await c.readBytes((b) => demux(b).stdout.includes("got-hello\n"), 10_000);
          assert.equal(demux(out).stdout, "got-hello\n");
          c.end();
          await c.readToEnd(10_000);
          await assertOnlyAllowedReachedDaemon(tap, proxy.logs, [`POST /v1.41/exec/${execId}/start`]);
          const r = tap.requests()[0];
          assert.equal(r?.bodyLength, body.length, "the daemon got the JSON body as the request body");
          assert.equal(tap.connections().find((x) => x.hijacked)?.tunnelToDaemon, "hello\n".length);
        } finally {
          c.destroy();
        }
      });
    });

    it("attach without Upgrade: dockerd's raw 200 stream works both ways", { timeout: 20_000 }, async () => {
      await withProxy(WRITE, async (proxy, tap) => {
        const c = await RawConnection.open({ port: proxy.port });
        try {
          c.write(attachHead(catId, false));
          const head = await c.readResponse({ stream: true });
          assert.equal(head.status, 200);
          assert.equal(header(head, "content-length"), undefined);
          c.write("raw-200\n");
          const out = await c.readBytes((b) => demux(b).stdout.includes("raw-200\n"), 10_000);
          assert.equal(demux(out).stdout, "raw-200\n");
          c.destroy(); // a hijack's allow record is written when the session ends
          await assertOnlyAllowedReachedDaemon(tap, proxy.logs, [
            `POST /v1.41/containers/${catId}/attach?stream=1&stdin=1&stdout=1&stderr=1`,
          ]);
        } finally {
          c.destroy();
        }
      });
    });

    const wsRequest = (key: string) =>
      `GET /v1.41/containers/${"hj-cat"}/attach/ws?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://x\r\n\r\n`;

    it("attach/ws is a write: denied with CONTAINERS=1 alone", { timeout: 15_000 }, async () => {
      await withProxy({ CONTAINERS: "1" }, async (proxy, tap) => {
        const ex = await rawExchange(
          { port: proxy.port },
          wsRequest(randomBytes(16).toString("base64")) + HIDDEN_LIST,
          {
            responses: 1,
            settleMs: 200,
          },
        );
        assert.equal(ex.finals[0]?.status, 403, ex.raw.toString());
        assert.match(messageOf(ex.finals[0] as never), /ContainerAttachWebsocket/);
        assert.equal(ex.closed, true);
        await assertOnlyAllowedReachedDaemon(tap, proxy.logs, []);
      });
    });

    it("attach/ws with POST=1: WebSocket handshake (101) and frames both ways", {
      timeout: 15_000,
    }, async () => {
      await withProxy(WRITE, async (proxy, tap) => {
        const key = randomBytes(16).toString("base64");
        const c = await RawConnection.open({ port: proxy.port });
        try {
          c.write(wsRequest(key));
          const head = await c.readResponse({ stream: true });
          assert.equal(head.status, 101);
          const accept = createHash("sha1")
            .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
            .digest("base64");
          assert.equal(header(head, "sec-websocket-accept"), accept);
          c.write(wsFrame("over-ws\n"));
          const out = await c.readBytes((b) => wsPayloads(b).includes("over-ws\n"), 10_000);
          assert.match(wsPayloads(out), /over-ws\n/);
          c.destroy(); // a hijack's allow record is written when the session ends
          await assertOnlyAllowedReachedDaemon(tap, proxy.logs, [
            `GET /v1.41/containers/hj-cat/attach/ws?stream=1&stdin=1&stdout=1`,
          ]);
        } finally {
          c.destroy();
        }
      });
    });
  });
});
