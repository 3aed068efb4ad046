/** The daemon reached over TCP with mutual TLS (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH). */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTestPki, opensslMissing } from "../helpers/certs.js";
import { runDocker } from "../helpers/docker-cli.js";
import { dockerdSkipReason, type PrivateDockerd, startDockerd } from "../helpers/dockerd.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";

const skip = dockerdSkipReason() ?? (process.env.CI === "true" ? undefined : opensslMissing());

describe("an upstream daemon behind mutual TLS", { skip: skip ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-tls-"));
  let engine: PrivateDockerd | undefined;
  let proxy: TestProxy | undefined;
  let certDir = "";

  before(async () => {
    const pki = makeTestPki(join(dir, "pki"), ["portcullis"]);
    engine = await startDockerd({
      tcp: true,
      tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
    });
    // Docker's layout: DOCKER_CERT_PATH holds ca.pem, cert.pem and key.pem.
    certDir = join(dir, "client");
    mkdirSync(certDir);
    copyFileSync(pki.ca, join(certDir, "ca.pem"));
    copyFileSync((pki.clients.portcullis as { cert: string }).cert, join(certDir, "cert.pem"));
    copyFileSync((pki.clients.portcullis as { key: string }).key, join(certDir, "key.pem"));
    proxy = await startProxy("", {
      SOCKET_PATH: "",
      DOCKER_HOST: `tcp://${engine.tcpAddress}`,
      DOCKER_TLS_VERIFY: "1",
      DOCKER_CERT_PATH: certDir,
      CONTAINERS: "1",
      POST: "1",
      EXEC: "1",
    });
  });
  after(async () => {
    await proxy?.stop();
    await engine?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the docker CLI, including a hijacked docker run -i", async () => {
    const p = proxy as TestProxy;
    const version = await runDocker(p.host, ["version", "--format", "{{.Server.APIVersion}}"]);
    assert.equal(version.stdout.trim(), "1.41", version.stderr);
    const run = await runDocker(p.host, ["run", "-i", "--rm", (engine as PrivateDockerd).image, "cat"], {
      input: "over tls\n",
    });
    assert.equal(run.stdout, "over tls\n", run.stderr);
  });

  it("answers 502 when the daemon's certificate is not trusted", async () => {
    const pki = makeTestPki(join(dir, "other"), ["x"]);
    const other = join(dir, "other-client");
    mkdirSync(other);
    copyFileSync(pki.ca, join(other, "ca.pem"));
    copyFileSync((pki.clients.x as { cert: string }).cert, join(other, "cert.pem"));
    copyFileSync((pki.clients.x as { key: string }).key, join(other, "key.pem"));
    const wrong = await startProxy("", {
      SOCKET_PATH: "",
      DOCKER_HOST: `tcp://${(engine as PrivateDockerd).tcpAddress}`,
      DOCKER_TLS_VERIFY: "1",
      DOCKER_CERT_PATH: other,
    });
    try {
      const r = await runDocker(wrong.host, ["version"]);
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /portcullis could not reach the Docker daemon at tcp:\/\/127\.0\.0\.1:\d+ \(TLS, verified\)/,
      );
    } finally {
      await wrong.stop();
    }
  });
});
