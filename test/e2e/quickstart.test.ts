/** README's quick start, as written: scripts/quickstart.sh in front of a daemon, on 127.0.0.1:2375. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { after, it } from "node:test";
import { runDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { REPO_ROOT } from "../helpers/proxy.js";

describeWithDockerd("the quick start", { image: false }, (engine) => {
  it("serves docker version and denies docker ps on 127.0.0.1:2375", async () => {
    // The script's only change for the test: the daemon is a private one, not /var/run/docker.sock.
    const child = spawn(
      join(REPO_ROOT, "scripts", "quickstart.sh"),
      ["--upstream", `unix://${engine.socketPath}`],
      {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const exited = once(child, "exit");
    after(async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    });
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start-up line within 120 s:\n${output}`)), 120_000);
      const onData = (chunk: Buffer) => {
        output += chunk;
        if (output.includes("portcullis listening on tcp://127.0.0.1:2375")) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", () => {
        clearTimeout(timer);
        reject(new Error(`quickstart exited:\n${output}`));
      });
    });
    const version = await runDocker("tcp://127.0.0.1:2375", [
      "version",
      "--format",
      "{{.Server.APIVersion}}",
    ]);
    assert.equal(version.stdout.trim(), "1.41", version.stderr);
    const ps = await runDocker("tcp://127.0.0.1:2375", ["ps"]);
    assert.match(
      ps.stderr,
      /Error response from daemon: portcullis denied ContainerList .*set CONTAINERS=1 to allow it/,
    );
    child.kill("SIGTERM");
    const [code] = await exited;
    assert.equal(code, 0);
  });
});
