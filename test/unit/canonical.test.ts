import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  canonicalTarget,
  compareApiVersions,
  goPathUnescape,
  muxCleanPath,
} from "../../src/routing/canonical.js";

function routeOf(target: string) {
  const r = canonicalTarget(target);
  return r.ok
    ? { path: r.path, routePath: r.routePath, version: r.version, query: r.query }
    : { refused: r.reason };
}

describe("canonicalTarget reads a request-target as dockerd does", () => {
  it("strips the version prefix and keeps the query out of routing", () => {
    assert.deepEqual(routeOf("/v1.41/containers/json?all=1"), {
      path: "/v1.41/containers/json",
      routePath: "/containers/json",
      version: "1.41",
      query: "all=1",
    });
  });

  it("accepts every prefix gorilla's [0-9.]+ accepts, including odd ones", () => {
    for (const v of ["1.41.0", "01.41", "1.41.", ".", "1..41", "999"]) {
      assert.equal(routeOf(`/v${v}/containers/json`).routePath, "/containers/json", v);
    }
  });

  it("does not treat /v/ or a bare /v1.41 as a version prefix", () => {
    assert.equal(routeOf("/v/containers/json").routePath, "/v/containers/json");
    assert.equal(routeOf("/v1.41").routePath, "/v1.41");
  });

  it("percent-decodes exactly once, like Go", () => {
    assert.equal(routeOf("/containers%2Fjson").path, "/containers/json");
    assert.equal(routeOf("/%63ontainers/json").path, "/containers/json");
    assert.equal(routeOf("/v1.41%2Fcontainers%2Fjson").routePath, "/containers/json");
    assert.equal(routeOf("/v1.41/containers/json%252F").path, "/v1.41/containers/json%2F");
    assert.equal(routeOf("/v1.41/containers/json%3Fall=1").path, "/v1.41/containers/json?all=1");
  });

  it("refuses paths dockerd would only 301-redirect", () => {
    for (const t of [
      "//containers/json",
      "/v1.41//containers/json",
      "/./containers/json",
      "/containers/../containers/json",
      "/containers/json/..",
      "/v1.41/containers/%2e%2e/images/json",
      "/v1.41/containers/x%2F%2Fjson",
    ]) {
      assert.match(String(routeOf(t).refused), /not canonical/, t);
    }
  });

  it("keeps a trailing slash, which is part of the path dockerd routes", () => {
    assert.equal(routeOf("/networks/").path, "/networks/");
    assert.equal(routeOf("/containers/json/").path, "/containers/json/");
  });

  it("refuses absolute-form, authority-form and asterisk-form targets", () => {
    for (const t of ["http://x/v1.41/containers/json", "docker:2375", "*", "containers/json", ""]) {
      assert.ok("refused" in routeOf(t), t);
    }
  });

  it("refuses malformed escapes, NUL, control bytes and invalid UTF-8", () => {
    for (const t of [
      "/containers/json%zz",
      "/containers/json%",
      "/containers/json%00",
      "/containers/x%0a/json",
      "/containers/%ff/json",
    ]) {
      assert.ok("refused" in routeOf(t), t);
    }
  });

  it("keeps non-ASCII names that are valid UTF-8", () => {
    assert.equal(routeOf("/containers/%F0%9F%90%B3/json").path, "/containers/🐳/json");
  });
});

describe("Go helpers", () => {
  it("goPathUnescape leaves + alone and rejects truncated escapes", () => {
    assert.equal(goPathUnescape("/a+b%20c"), "/a+b c");
    assert.equal(goPathUnescape("/a%2"), null);
  });

  it("muxCleanPath matches gorilla's cleanPath", () => {
    assert.equal(muxCleanPath(""), "/");
    assert.equal(muxCleanPath("/"), "/");
    assert.equal(muxCleanPath("/a//b/"), "/a/b/");
    assert.equal(muxCleanPath("/a/../.."), "/");
    assert.equal(muxCleanPath("/a/./b/.."), "/a");
  });

  it("compareApiVersions compares numerically, unparsable pieces as 0", () => {
    assert.equal(compareApiVersions("1.41", "1.9"), 1);
    assert.equal(compareApiVersions("1.41.0", "1.41"), 0);
    assert.equal(compareApiVersions("01.41", "1.41"), 0);
    assert.equal(compareApiVersions("1..41", "1.12"), -1);
    assert.equal(compareApiVersions(".", "1.12"), -1);
  });
});
