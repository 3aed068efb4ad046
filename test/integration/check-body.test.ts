/** `portcullis check --body`: the body rules, offline. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLI, REPO_ROOT } from "../helpers/proxy.js";

describe("portcullis check --body", () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-check-body-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(REPO_ROOT, "examples", "policy", "ci-runner.yaml");
  /** Runs `portcullis check --body` on a body given as text (exact bytes) or as an object. */
  const check = (body: object | string) => {
    const file = join(dir, "body.json");
    writeFileSync(file, typeof body === "string" ? body : JSON.stringify(body));
    return spawnSync(
      process.execPath,
      [
        CLI,
        "check",
        "--config",
        config,
        "--client",
        "ci",
        "--body",
        file,
        "POST",
        "/v1.41/containers/create",
      ],
      { encoding: "utf8", env: { PATH: process.env.PATH ?? "", CI_TOKEN: "t" }, timeout: 10_000 },
    );
  };

  it("denies a privileged container, naming the body rule and what to relax", () => {
    const r = check({ Image: "alpine", HostConfig: { Privileged: true } });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /^decision: {2}deny \(403\) by the body/);
    assert.match(r.stdout, /body: {6}profile ci, body rule body\.privileged: HostConfig\.Privileged is true/);
    assert.match(r.stdout, /to change: relax body\.privileged under body: in profile ci/);
  });

  it("allows an ordinary container and shows the stamped labels", () => {
    const r = check({ Image: "alpine", HostConfig: { Binds: ["/builds/x:/src"] } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /body: {6}allowed, labels stamped: .*"com\.example\.owner":"ci"/);
  });

  it("refuses a body dockerd could read differently", () => {
    const r = check('{"Image":"a","HostConfig":{},"hostconfig":{"Privileged":true}}');
    assert.equal(r.status, 1);
    assert.match(r.stdout, /refuse \(400\) by the body/);
    assert.match(r.stdout, /differ only in case/);
  });
});
