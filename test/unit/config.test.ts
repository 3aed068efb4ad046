import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../../src/config/env.js";
import { ConfigError } from "../../src/config/errors.js";

describe("loadConfig", () => {
  it("defaults to the anchors' dual-stack :2375 listener and /var/run/docker.sock", () => {
    const c = loadConfig({});
    assert.deepEqual(c.listeners, [{ kind: "tcp", host: "::", port: 2375 }]);
    assert.deepEqual(c.upstream, { kind: "unix", socketPath: "/var/run/docker.sock" });
    assert.equal(c.logLevel, "info");
  });

  it("binds IPv4 only with DISABLE_IPV6", () => {
    assert.deepEqual(loadConfig({ DISABLE_IPV6: "1" }).listeners, [
      { kind: "tcp", host: "0.0.0.0", port: 2375 },
    ]);
  });

  it("accepts several listeners, unix sockets with mode and owner", () => {
    const c = loadConfig({ PORTCULLIS_LISTEN: "tcp://127.0.0.1:2375,unix:///run/p.sock?mode=0600&gid=999" });
    assert.deepEqual(c.listeners, [
      { kind: "tcp", host: "127.0.0.1", port: 2375 },
      { kind: "unix", path: "/run/p.sock", mode: 0o600, gid: 999 },
    ]);
    assert.equal(loadConfig({ PORTCULLIS_LISTEN: "unix:///run/p.sock" }).listeners[0]?.kind, "unix");
  });

  it("lets command-line flags win over the environment", () => {
    const c = loadConfig(
      { PORTCULLIS_LISTEN: "tcp://127.0.0.1:1", LOG_LEVEL: "debug" },
      { listen: ["tcp://[::1]:2"], logLevel: "warning" },
    );
    assert.deepEqual(c.listeners, [{ kind: "tcp", host: "::1", port: 2 }]);
    assert.equal(c.logLevel, "warn");
  });

  it("reads DOCKER_HOST with Docker's TLS variables", () => {
    const c = loadConfig({
      DOCKER_HOST: "tcp://10.0.0.1:2376",
      DOCKER_TLS_VERIFY: "1",
      DOCKER_CERT_PATH: "/certs",
    });
    assert.deepEqual(c.upstream, {
      kind: "tcp",
      host: "10.0.0.1",
      port: 2376,
      tls: { verify: true, ca: "/certs/ca.pem", cert: "/certs/cert.pem", key: "/certs/key.pem" },
    });
    assert.deepEqual(loadConfig({ DOCKER_HOST: "unix:///x.sock" }).upstream, {
      kind: "unix",
      socketPath: "/x.sock",
    });
  });

  it("refuses SOCKET_PATH and DOCKER_HOST together instead of guessing", () => {
    assert.throws(() => loadConfig({ SOCKET_PATH: "/a.sock", DOCKER_HOST: "unix:///b.sock" }), ConfigError);
  });

  it("names the setting, value and accepted forms of every bad value", () => {
    const cases: Record<string, string> = {
      PORTCULLIS_LISTEN: "0.0.0.0:2375",
      LOG_LEVEL: "loud",
      DOCKER_HOST: "ssh://host",
      PORTCULLIS_MAX_HEADER_BYTES: "big",
      POST: "maybe",
    };
    for (const [name, value] of Object.entries(cases)) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.message.includes(`${name}=${JSON.stringify(value)}`) &&
          /expected/.test(e.message),
        name,
      );
    }
  });
});
