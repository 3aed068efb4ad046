import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readToggles } from "../../src/config/env.js";
import { ConfigError } from "../../src/config/errors.js";
import { envPolicy } from "../../src/policy/env-policy.js";
import { createGate } from "../../src/proxy/gate.js";
import { buildRouteIndex } from "../../src/routing/match.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";

const index = buildRouteIndex(ROUTES);
const ANON = { listener: "default", remoteAddress: "127.0.0.1", authorization: undefined };
function gateFor(env: Record<string, string>) {
  return createGate(index, { current: envPolicy(ROUTES, readToggles(env)) });
}
const verdict = (env: Record<string, string>, method: string, target: string) => {
  const r = gateFor(env).check(method, target, ANON);
  return r.verdict === "allow" ? "allow" : r.status;
};

describe("environment toggles grant what the anchors grant", () => {
  it("defaults allow only ping, version and events", () => {
    assert.equal(verdict({}, "HEAD", "/_ping"), "allow");
    assert.equal(verdict({}, "GET", "/v1.41/version"), "allow");
    assert.equal(verdict({}, "GET", "/v1.41/events"), "allow");
    assert.equal(verdict({}, "GET", "/v1.41/containers/json"), 403);
    assert.equal(verdict({}, "GET", "/info"), 403);
  });

  it("a section toggle grants reads, and writes only with POST=1", () => {
    assert.equal(verdict({ CONTAINERS: "1" }, "GET", "/containers/json"), "allow");
    assert.equal(verdict({ CONTAINERS: "1" }, "POST", "/containers/create"), 403);
    assert.equal(verdict({ CONTAINERS: "1", POST: "1" }, "POST", "/containers/create"), "allow");
    assert.equal(verdict({ CONTAINERS: "1", POST: "1" }, "DELETE", "/containers/x"), "allow");
    assert.equal(verdict({ POST: "1" }, "POST", "/networks/create"), 403);
  });

  it("exec create belongs to CONTAINERS, exec start to EXEC", () => {
    assert.equal(verdict({ CONTAINERS: "1", POST: "1" }, "POST", "/containers/x/exec"), "allow");
    assert.equal(verdict({ CONTAINERS: "1", POST: "1" }, "POST", "/exec/x/start"), 403);
    assert.equal(verdict({ EXEC: "1", POST: "1" }, "POST", "/exec/x/start"), "allow");
  });

  it("ALLOW_* work without POST and without CONTAINERS (linuxserver semantics)", () => {
    assert.equal(verdict({ ALLOW_START: "1" }, "POST", "/containers/x/start"), "allow");
    assert.equal(verdict({ ALLOW_START: "1" }, "POST", "/containers/x/kill"), 403);
    assert.equal(verdict({ ALLOW_RESTARTS: "1" }, "POST", "/containers/x/kill"), "allow");
    assert.equal(verdict({ ALLOW_RESTARTS: "1" }, "POST", "/containers/x/restart"), "allow");
    assert.equal(verdict({ ALLOW_STOP: "1" }, "POST", "/v1.41/containers/x/stop"), "allow");
    assert.equal(verdict({ ALLOW_PAUSE: "1", ALLOW_UNPAUSE: "1" }, "POST", "/containers/x/unpause"), "allow");
    assert.equal(verdict({ ALLOW_START: "1" }, "DELETE", "/containers/x"), 403);
  });

  it("treats attach/ws as a write although it is a GET", () => {
    assert.equal(verdict({ CONTAINERS: "1" }, "GET", "/containers/x/attach/ws"), 403);
    assert.equal(verdict({ CONTAINERS: "1", POST: "1" }, "GET", "/containers/x/attach/ws"), "allow");
  });

  it("never grants debug, OPTIONS or unknown routes", () => {
    const all = Object.fromEntries(["CONTAINERS", "POST", "SYSTEM", "INFO"].map((k) => [k, "1"]));
    assert.equal(verdict(all, "GET", "/debug/vars"), 403);
    assert.equal(verdict(all, "OPTIONS", "/containers/json"), 403);
    assert.equal(verdict(all, "GET", "/containers/json/"), 404);
    assert.equal(verdict(all, "GET", "//containers/json"), 400);
  });

  it("decides on the decoded path, so encodings cannot smuggle a section", () => {
    assert.equal(verdict({}, "GET", "/%63ontainers/json"), 403);
    assert.equal(verdict({ CONTAINERS: "1" }, "POST", "/v1.41/containers/nonexistent%2Fstop"), 403);
  });

  it("says in the denial which toggle would allow the request", () => {
    const r = gateFor({}).check("POST", "/v1.41/containers/create", ANON);
    assert.equal(r.verdict, "deny");
    if (r.verdict === "deny") {
      assert.equal(
        r.message,
        "portcullis denied ContainerCreate (POST /v1.41/containers/create): set CONTAINERS=1 and POST=1 to allow it",
      );
    }
    const s = gateFor({}).check("POST", "/containers/x/start", ANON);
    if (s.verdict === "deny") assert.match(s.message, /or ALLOW_START=1/);
  });
});

describe("toggle values", () => {
  it("accept integers, true/yes/on and false/no/off in any case", () => {
    assert.equal(readToggles({ CONTAINERS: "2" }).CONTAINERS, true);
    assert.equal(readToggles({ CONTAINERS: "TRUE" }).CONTAINERS, true);
    assert.equal(readToggles({ CONTAINERS: "on" }).CONTAINERS, true);
    assert.equal(readToggles({ EVENTS: "no" }).EVENTS, false);
    assert.equal(readToggles({ EVENTS: "0" }).EVENTS, false);
    assert.equal(readToggles({ EVENTS: "" }).EVENTS, true);
  });

  it("stop start-up on anything else, naming the variable, the value and what is accepted", () => {
    assert.throws(
      () => readToggles({ CONTAINERS: "enabled" }),
      (e: unknown) =>
        e instanceof ConfigError && /CONTAINERS="enabled"/.test(e.message) && /true\/false/.test(e.message),
    );
  });
});
