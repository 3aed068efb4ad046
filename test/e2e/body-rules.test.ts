/**
 * Body rules with the real docker CLI and raw requests: what a client may create. Every denied body
 * is checked not to have created anything on the daemon.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";

const POLICY = (allowedDir: string) => `version: 1
profiles:
  builder:
    rules:
      - allow: [SystemPing, SystemPingHead, SystemVersion, SystemInfo, SystemEvents, ContainerLogs]
      - allow: [containers:*, ContainerAttach, ExecStart, images:read, services:*, TaskList, NetworkList, NetworkInspect, volumes:*, NodeList]
    body:
      bind_sources: ["${allowedDir}/**"]
      exec_commands: ["echo *", "cat"]
    mutate:
      labels: { portcullis.owner: builder }
default_profile: builder
`;

function post(
  port: number,
  path: string,
  body: string | Buffer,
  chunked = false,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path,
        headers: chunked
          ? { "Content-Type": "application/json", "Transfer-Encoding": "chunked" }
          : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    if (chunked) {
      for (let i = 0; i < body.length; i += 7) req.write(body.slice(i, i + 7) as string);
      req.end();
    } else req.end(body);
  });
}

describeWithDockerd("body rules", { swarm: true }, (engine) => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-body-"));
  const allowedDir = join(dir, "allowed");
  let proxy: TestProxy;
  const direct = engine.host;
  const image = engine.image;
  const containerCount = async () =>
    (await runDocker(direct, ["ps", "-aq"])).stdout.trim().split("\n").filter(Boolean).length;

  before(async () => {
    writeFileSync(join(dir, "policy.yaml"), POLICY(allowedDir));
    proxy = await startProxy(engine.socketPath, { PORTCULLIS_CONFIG: join(dir, "policy.yaml") });
  });
  after(async () => {
    await proxy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe("the docker CLI", () => {
    it("runs an ordinary container, stamped with the owner label", async () => {
      const r = await runDocker(proxy.host, ["run", "--name", "plain", image, "echo", "ok"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "ok");
      const label = await runDocker(direct, [
        "inspect",
        "--format",
        '{{index .Config.Labels "portcullis.owner"}}',
        "plain",
      ]);
      assert.equal(label.stdout.trim(), "builder");
    });

    it("cannot spoof the owner label", async () => {
      const r = await runDocker(proxy.host, [
        "create",
        "--name",
        "spoof",
        "--label",
        "portcullis.owner=admin",
        image,
        "true",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const label = await runDocker(direct, [
        "inspect",
        "--format",
        '{{index .Config.Labels "portcullis.owner"}}',
        "spoof",
      ]);
      assert.equal(label.stdout.trim(), "builder");
    });

    const denials: [string, string[], RegExp][] = [
      ["--privileged", ["--privileged"], /body rule body\.privileged: HostConfig\.Privileged is true/],
      [
        "-v /:/host",
        ["-v", "/:/host"],
        /body rule body\.bind_sources: HostConfig\.Binds\[0\] mounts host path "\/"/,
      ],
      [
        "--mount type=bind,src=/etc",
        ["--mount", "type=bind,src=/etc,dst=/h"],
        /body\.bind_sources: HostConfig\.Mounts\[0\] mounts host path "\/etc"/,
      ],
      [
        "--cap-add SYS_ADMIN",
        ["--cap-add", "SYS_ADMIN"],
        /body\.capabilities: HostConfig\.CapAdd adds capability "(CAP_)?SYS_ADMIN"/,
      ],
      ["--pid host", ["--pid", "host"], /body\.host_namespaces: HostConfig\.PidMode is "host"/],
      ["--network host", ["--network", "host"], /body\.host_namespaces: HostConfig\.NetworkMode is "host"/],
      ["--device", ["--device", "/dev/null"], /body\.devices: HostConfig\.Devices is not empty/],
      ["--security-opt seccomp=unconfined", ["--security-opt", "seccomp=unconfined"], /body\.unconfined/],
      [
        "--sysctl",
        ["--sysctl", "net.ipv4.ip_forward=1"],
        /body\.sysctls: HostConfig\.Sysctls sets "net\.ipv4\.ip_forward"/,
      ],
      ["--volumes-from", ["--volumes-from", "plain"], /body\.volumes_from/],
    ];
    for (const [name, flags, message] of denials) {
      it(`denies docker run ${name}, naming the rule`, async () => {
        const before = await containerCount();
        const r = await runDocker(proxy.host, ["run", "--rm", ...flags, image, "true"]);
        assert.notEqual(r.code, 0);
        assert.match(
          r.stderr,
          /Error response from daemon: portcullis denied ContainerCreate \(POST \/v1\.41\/containers\/create\): profile builder, /,
        );
        assert.match(r.stderr, message);
        assert.equal(await containerCount(), before, "nothing was created");
      });
    }

    it("allows a bind mount under an allowed directory", async () => {
      const r = await runDocker(proxy.host, [
        "run",
        "--rm",
        "-v",
        `${allowedDir}/data:/data`,
        image,
        "echo",
        "mounted",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "mounted");
    });

    it("denies a local volume that binds the host's root", async () => {
      const r = await runDocker(proxy.host, [
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        "device=/",
        "rootvol",
      ]);
      assert.match(
        r.stderr,
        /portcullis denied VolumeCreate .*body\.bind_sources: DriverOpts \(local volume with o=bind\) mounts host path "\/"/,
      );
      assert.equal((await runDocker(direct, ["volume", "ls", "-q"])).stdout.includes("rootvol"), false);
    });

    it("allows exec only for listed commands", async () => {
      assert.equal(
        (await runDocker(direct, ["run", "-d", "--name", "target", image, "sleep", "600"])).code,
        0,
      );
      const ok = await runDocker(proxy.host, ["exec", "target", "echo", "hi"]);
      assert.equal(ok.stdout.trim(), "hi", ok.stderr);
      const no = await runDocker(proxy.host, ["exec", "target", "sh", "-c", "id"]);
      assert.match(
        no.stderr,
        /portcullis denied ContainerExec .*body\.exec_commands: Cmd "sh -c id" is not an allowed command/,
      );
    });

    it("denies the service equivalents", async () => {
      for (const flags of [
        ["--mount", "type=bind,src=/,dst=/host"],
        ["--cap-add", "SYS_ADMIN"],
        ["--network", "host"],
      ]) {
        const r = await runDocker(proxy.host, [
          "service",
          "create",
          "--detach",
          ...flags,
          image,
          "sleep",
          "60",
        ]);
        assert.match(
          r.stderr,
          /portcullis denied ServiceCreate \(POST \/v1\.41\/services\/create\): profile builder, body rule body\./,
          flags.join(" "),
        );
      }
      assert.equal((await runDocker(direct, ["service", "ls", "-q"])).stdout.trim(), "");
    });
  });

  describe("bodies written to fool a JSON parser", () => {
    const create = "/v1.41/containers/create";
    it("reads case-variant keys as dockerd does (and denies)", async () => {
      const r = await post(proxy.port, create, JSON.stringify({ image, hostconfig: { privileged: true } }));
      assert.equal(r.status, 403, r.body);
      assert.match(r.body, /body\.privileged/);
    });

    it("reads Unicode-folded keys as dockerd does (Kelvin sign, long s)", async () => {
      const r = await post(proxy.port, create, `{"Image":"${image}","HostConfig":{"Bindſ":["/:/host"]}}`);
      assert.equal(r.status, 403, r.body);
      const k = await post(
        proxy.port,
        create,
        `{"Image":"${image}","HostConfig":{"NetworKMode":"host"}}`.replace("NetworKMode", "Networ\u212aMode"),
      );
      assert.equal(k.status, 403, k.body);
    });

    it("decodes \\u escapes in keys", async () => {
      const r = await post(proxy.port, create, `{"Image":"${image}","HostConfig":{"\\u0050rivileged":true}}`);
      assert.equal(r.status, 403, r.body);
    });

    it("refuses duplicate and case-duplicate keys with 400", async () => {
      const dup = await post(
        proxy.port,
        create,
        `{"Image":"${image}","HostConfig":{"Privileged":true},"HostConfig":{"Binds":[]}}`,
      );
      assert.equal(dup.status, 400, dup.body);
      assert.match(dup.body, /duplicate key \\"HostConfig\\"/);
      const fold = await post(
        proxy.port,
        create,
        `{"Image":"${image}","HostConfig":{"Privileged":false,"privileged":true}}`,
      );
      assert.equal(fold.status, 400, fold.body);
      assert.match(fold.body, /differ only in case/);
    });

    it("refuses invalid UTF-8 and excessive depth", async () => {
      const bytes = Buffer.concat([
        Buffer.from(`{"Image":"${image}","Labels":{"a":"`),
        Buffer.from([0xff]),
        Buffer.from('"}}'),
      ]);
      const bad = await post(proxy.port, create, bytes);
      assert.equal(bad.status, 400, bad.body);
      assert.match(bad.body, /not valid UTF-8/);
      const deep = await post(proxy.port, create, `${"[".repeat(100)}${"]".repeat(100)}`);
      assert.equal(deep.status, 400);
      assert.match(deep.body, /nests deeper/);
    });

    it("inspects chunked bodies like length-framed ones", async () => {
      const r = await post(
        proxy.port,
        create,
        JSON.stringify({ Image: image, HostConfig: { Privileged: true } }),
        true,
      );
      assert.equal(r.status, 403, r.body);
    });

    it("inspects whatever the Content-Type says", async () => {
      const body = JSON.stringify({ Image: image, HostConfig: { Privileged: true } });
      const r = await new Promise<number>((resolve, reject) => {
        const req = http.request(
          {
            host: "127.0.0.1",
            port: proxy.port,
            method: "POST",
            path: create,
            headers: { "Content-Type": "text/plain", "Content-Length": body.length },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end(body);
      });
      assert.equal(r, 403);
    });

    it("answers 413 for a body over the cap", async () => {
      const r = await post(
        proxy.port,
        create,
        JSON.stringify({ Image: image, Labels: { big: "x".repeat(1_100_000) } }),
      );
      assert.equal(r.status, 413);
      assert.match(r.body, /PORTCULLIS_BODY_MAX_BYTES/);
    });
  });
});
