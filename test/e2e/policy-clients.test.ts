/**
 * One policy-file proxy, several clients with different rights, against a private dockerd and the
 * real docker CLI: recognised by listener, by bearer token (the CLI's config.json HttpHeaders) and
 * by client certificate (mTLS); and a profile in audit mode.
 *
 * Between the proxy and the daemon sits a recording relay: it proves the daemon never receives the
 * client's Authorization header, and that refused TLS connections never reach it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { makeTestPki, opensslMissing, type TestPki } from "../helpers/certs.js";
import { runDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { type PolicyTestProxy, startPolicyProxy } from "../helpers/proxy.js";
import { recordingRelay } from "../helpers/recording-relay.js";

const TOKEN = "s3cr3t-ci-token-0123456789";

const deniedBy = (operation: string) =>
  new RegExp(`Error response from daemon: portcullis denied ${operation} \\((GET|HEAD|POST) /v[0-9.]+/`);
const UNKNOWN_CLIENT = /no client entry of the policy file matches this connection/;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeWithDockerd("policy file: clients with different rights", {}, async (engine) => {
  const skipTls = opensslMissing();
  const dir = mkdtempSync(join(tmpdir(), "portcullis-clients-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const pki: TestPki | undefined = skipTls ? undefined : makeTestPki(join(dir, "pki"), ["admin", "someone"]);
  const relay = await recordingRelay(join(dir, "relay.sock"), engine.socketPath, 16 * 1024 * 1024);
  after(() => relay.close());

  const tlsListener = pki
    ? `
  - name: mtls
    address: tcp://127.0.0.1:0
    tls: { cert: ${pki.server.cert}, key: ${pki.server.key}, client_ca: ${pki.ca} }`
    : "";
  const tlsClient = pki
    ? `
  - { name: admin, profile: writer, match: { listener: mtls, certificate: { cn: admin } } }`
    : "";
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(
    policyPath,
    `version: 1
listeners:
  - name: ro
    address: unix://${dir}/ro.sock?mode=0600
  - name: rw
    address: unix://${dir}/rw.sock?mode=0600
  - name: audit
    address: unix://${dir}/audit.sock
  - name: main
    address: tcp://127.0.0.1:0${tlsListener}
profiles:
  readonly:
    rules:
      - allow: [SystemPing, SystemPingHead, SystemVersion, containers:read]
  writer:
    rules:
      - allow: [SystemPing, SystemPingHead, SystemVersion, containers:read, ContainerCreate, ContainerStart]
  ops:
    mode: audit
    rules:
      - allow: [SystemPing, SystemPingHead, SystemVersion, containers:read]
clients:
  - { name: ro-socket, profile: readonly, match: { listener: ro } }
  - { name: rw-socket, profile: writer, match: { listener: rw } }
  - { name: auditor, profile: ops, match: { listener: audit } }
  - { name: ci, profile: writer, match: { token: { env: CI_TOKEN } } }${tlsClient}
`,
  );
  const proxy: PolicyTestProxy = await startPolicyProxy(policyPath, join(dir, "relay.sock"), {
    CI_TOKEN: TOKEN,
  });
  after(() => proxy.stop());
  const version = proxy.serving.policy().version;

  const containers: string[] = [];
  after(async () => {
    if (containers.length > 0) await runDocker(engine.host, ["rm", "-f", ...containers]);
  });
  /** Starts `docker run -d` of a short-lived sleeper named `name` through `host`. */
  const run = (host: string, name: string, extra: string[] = [], env?: Record<string, string>) => {
    containers.push(name);
    return runDocker(host, [...extra, "run", "-d", "--name", name, engine.image, "sleep", "60"], {
      ...(env ? { env } : {}),
    });
  };
  const exists = async (name: string) =>
    (await runDocker(engine.host, ["inspect", "--format", "{{.State.Running}}", name])).stdout.trim();
  /** Decision records for `operation` logged since `from`. */
  const decisions = (from: number, operation: string) =>
    proxy.logs.slice(from).filter((r) => r.decision !== undefined && r.operation === operation);

  describe("by listener: two unix sockets", () => {
    const ro = `unix://${dir}/ro.sock`;
    const rw = `unix://${dir}/rw.sock`;

    it("docker ps works on both", async () => {
      for (const host of [ro, rw]) {
        const r = await runDocker(host, ["ps", "-a", "--format", "{{.Names}}"]);
        assert.equal(r.code, 0, `${host}: ${r.stderr}`);
      }
    });

    it("docker run works on the read-write socket only", async () => {
      const mark = proxy.logs.length;
      const ok = await run(rw, "pc-by-listener-rw");
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(await exists("pc-by-listener-rw"), "true");

      const denied = await run(ro, "pc-by-listener-ro");
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, deniedBy("ContainerCreate"));
      assert.match(
        denied.stderr,
        /profile readonly has no rule allowing it \(add "- allow: ContainerCreate"\)/,
      );
      assert.equal(await exists("pc-by-listener-ro"), "", "the denied container does not exist");

      const records = decisions(mark, "ContainerCreate");
      const allowed = records.find((r) => r.decision === "allow");
      const refused = records.find((r) => r.decision === "deny");
      assert.deepEqual(
        [allowed?.client, allowed?.profile, allowed?.listener, allowed?.policy],
        ["rw-socket", "writer", "rw", version],
      );
      assert.deepEqual(
        [refused?.client, refused?.profile, refused?.listener, refused?.policy, refused?.status],
        ["ro-socket", "readonly", "ro", version, 403],
      );
    });
  });

  describe("by bearer token from the docker CLI's config.json", () => {
    const configDir = (token: string | undefined) => {
      const d = mkdtempSync(join(dir, "docker-config-"));
      writeFileSync(
        join(d, "config.json"),
        JSON.stringify(token === undefined ? {} : { HttpHeaders: { Authorization: `Bearer ${token}` } }),
      );
      return { DOCKER_CONFIG: d };
    };
    const host = () => proxy.address("main");

    it("the right token gets its profile: docker ps and docker run work", async () => {
      const mark = proxy.logs.length;
      const env = configDir(TOKEN);
      const ps = await runDocker(host(), ["ps"], { env });
      assert.equal(ps.code, 0, ps.stderr);
      const r = await run(host(), "pc-by-token", [], env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await exists("pc-by-token"), "true");
      const [record] = decisions(mark, "ContainerCreate");
      assert.deepEqual([record?.client, record?.profile, record?.decision], ["ci", "writer", "allow"]);
    });

    for (const [label, token] of [
      ["a wrong token", "not-the-token"],
      ["a token differing in length only", `${TOKEN}x`],
      ["no token", undefined],
    ] as const) {
      it(`${label} gets the default: denied everything`, async () => {
        const mark = proxy.logs.length;
        const env = configDir(token);
        const ps = await runDocker(host(), ["ps"], { env });
        assert.notEqual(ps.code, 0);
        assert.match(ps.stderr, deniedBy("ContainerList"));
        assert.match(ps.stderr, UNKNOWN_CLIENT);
        // docker run starts with GET /_ping, and gives up when that is denied.
        const name = `pc-no-token-${containers.length}`;
        const r = await run(host(), name, [], env);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /Error response from daemon: portcullis denied (SystemPing|ContainerCreate) /);
        assert.match(r.stderr, UNKNOWN_CLIENT);
        assert.equal(await exists(name), "", "no container was created");
        const [record] = decisions(mark, "ContainerList");
        assert.deepEqual(
          [record?.client, record?.profile, record?.decision],
          ["anonymous", "(none)", "deny"],
        );
      });
    }

    it("also accepts the token as the password of Basic credentials", async () => {
      const get = (auth: string) =>
        new Promise<number>((resolve, reject) => {
          http
            .get(
              { host: "127.0.0.1", port: proxy.port("main"), path: "/v1.41/containers/json", auth },
              (res) => {
                res.resume();
                res.on("end", () => resolve(res.statusCode ?? 0));
              },
            )
            .on("error", reject);
        });
      assert.equal(await get(`ci:${TOKEN}`), 200);
      assert.equal(await get("ci:wrong"), 403);
    });

    it("the daemon never receives the Authorization header", () => {
      const sent = relay.text();
      assert.match(sent, /GET \/v[0-9.]+\/containers\/json/, "the relay saw the forwarded requests");
      assert.match(sent, /POST \/v[0-9.]+\/containers\/create/);
      assert.doesNotMatch(sent, /authorization/i);
      assert.ok(!sent.includes(TOKEN), "the token never reaches the daemon");
      assert.ok(!sent.includes(Buffer.from(`ci:${TOKEN}`).toString("base64")), "nor its Basic form");
    });
  });

  describe("by client certificate on an mTLS listener", { skip: skipTls ?? false }, () => {
    const p = pki as TestPki;
    const tlsArgs = (pair?: { cert: string; key: string }) => [
      "--tlsverify",
      "--tlscacert",
      p.ca,
      ...(pair ? ["--tlscert", pair.cert, "--tlskey", pair.key] : []),
    ];
    let host = "";
    before(() => {
      host = `tcp://127.0.0.1:${proxy.port("mtls")}`;
    });

    it("cn=admin gets its profile: docker ps and docker run work", async () => {
      const mark = proxy.logs.length;
      const admin = p.clients.admin as { cert: string; key: string };
      const ps = await runDocker(host, [...tlsArgs(admin), "ps"]);
      assert.equal(ps.code, 0, ps.stderr);
      const r = await run(host, "pc-by-cert", tlsArgs(admin));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await exists("pc-by-cert"), "true");
      const [record] = decisions(mark, "ContainerCreate");
      assert.deepEqual([record?.client, record?.profile, record?.listener], ["admin", "writer", "mtls"]);
    });

    it("another valid certificate gets the default: denied everything", async () => {
      const mark = proxy.logs.length;
      const ps = await runDocker(host, [...tlsArgs(p.clients.someone), "ps"]);
      assert.notEqual(ps.code, 0);
      assert.match(ps.stderr, deniedBy("ContainerList"));
      assert.match(ps.stderr, UNKNOWN_CLIENT);
      const [record] = decisions(mark, "ContainerList");
      assert.deepEqual([record?.client, record?.decision], ["anonymous", "deny"]);
    });

    it("a connection without a client certificate is refused at TLS and never reaches the daemon", async () => {
      const before = relay.bytes();
      const mark = proxy.logs.length;
      const cli = await runDocker(host, [...tlsArgs(), "ps"]);
      assert.notEqual(cli.code, 0);
      assert.match(cli.stderr, /remote error: tls: (certificate required|bad certificate)/);
      assert.doesNotMatch(cli.stderr, /portcullis denied/);

      // A raw TLS client: the handshake or the first read fails, no HTTP answer ever comes back.
      const raw = await new Promise<{ error?: string; received: string }>((resolve) => {
        let received = "";
        const socket = tls.connect({
          host: "127.0.0.1",
          port: proxy.port("mtls"),
          ca: p.ca,
          servername: "localhost",
        });
        const timer = setTimeout(() => {
          socket.destroy();
          resolve({ error: "timeout", received });
        }, 5_000);
        socket.on("secureConnect", () => socket.write("GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"));
        socket.on("data", (b) => {
          received += b;
        });
        socket.on("error", (e) => {
          clearTimeout(timer);
          resolve({ error: e.message, received });
        });
        socket.on("close", () => {
          clearTimeout(timer);
          resolve({ received });
        });
      });
      assert.equal(raw.received, "", "no HTTP response without a certificate");
      assert.notEqual(raw.error, "timeout");

      // A certificate with cn=admin from another CA is refused the same way.
      const rogue = await runDocker(host, [...tlsArgs(p.rogue), "ps"]);
      assert.notEqual(rogue.code, 0);
      assert.match(rogue.stderr, /remote error: tls: /);
      assert.doesNotMatch(rogue.stderr, /portcullis denied/);

      await sleep(100);
      assert.equal(relay.bytes(), before, "nothing reached the daemon");
      assert.equal(decisions(mark, "ContainerList").length, 0, "no request was decided");
      assert.ok(
        proxy.logs.slice(mark).some((r) => String(r.msg).startsWith("TLS handshake failed")),
        "the refused handshake is logged",
      );
    });
  });

  describe("a profile in audit mode", () => {
    const host = `unix://${dir}/audit.sock`;

    it("forwards what the rules would deny, and logs a warning for it", async () => {
      const mark = proxy.logs.length;
      const r = await run(host, "pc-audited");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await exists("pc-audited"), "true", "the container was really created and started");
      for (const operation of ["ContainerCreate", "ContainerStart"]) {
        const [record] = decisions(mark, operation);
        assert.ok(record, `${operation} was logged`);
        assert.equal(record.level, "warn");
        assert.equal(record.audit, "would deny");
        assert.equal(record.decision, "audit");
        assert.equal(record.client, "auditor");
        assert.equal(record.profile, "ops");
        assert.equal(record.policy, version);
        assert.equal(record.rule, "default deny");
        assert.match(String(record.msg), new RegExp(`audit: profile ops would deny ${operation}`));
      }
      const ps = await runDocker(host, ["ps"]);
      assert.equal(ps.code, 0, ps.stderr);
      const [list] = decisions(mark, "ContainerList");
      assert.equal(list?.audit, undefined, "what the rules allow is not an audit record");
      assert.equal(list?.level, "debug");
    });
  });
});
