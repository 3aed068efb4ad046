import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildRouteIndex, matchRoute } from "../../src/routing/match.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";

const index = buildRouteIndex(ROUTES);
const op = (method: string, routePath: string) =>
  matchRoute(index, method, routePath)?.route.operation ?? null;

describe("matchRoute dispatches like dockerd's gorilla/mux router", () => {
  it("finds the named operation of ordinary routes", () => {
    assert.equal(op("GET", "/containers/json"), "ContainerList");
    assert.equal(op("GET", "/containers/abc/json"), "ContainerInspect");
    assert.equal(op("GET", "/services"), "ServiceList");
    assert.equal(op("HEAD", "/_ping"), "SystemPingHead");
    assert.equal(op("POST", "/containers/abc/exec"), "ContainerExec");
    assert.equal(op("POST", "/exec/abc/start"), "ExecStart");
  });

  it("lets {name:.*} variables span slashes, as dockerd does", () => {
    assert.equal(op("GET", "/images/docker.io/library/mini:latest/json"), "ImageInspect");
    assert.equal(op("GET", "/containers/x/dkprobe/json"), "ContainerInspect");
    assert.equal(op("POST", "/containers/create/start"), "ContainerStart");
    assert.equal(op("DELETE", "/containers/json"), "ContainerDelete");
    assert.equal(op("DELETE", "/containers/x/"), "ContainerDelete");
  });

  it("stops plain {id} variables at a slash (swarm objects)", () => {
    assert.equal(op("GET", "/services/a"), "ServiceInspect");
    assert.equal(op("GET", "/services/a/b"), null);
  });

  it("is case-sensitive in path and method", () => {
    assert.equal(op("GET", "/CONTAINERS/json"), null);
    assert.equal(op("get", "/containers/json"), null);
  });

  it("forgives no trailing slash except the explicit /networks/ route", () => {
    assert.equal(op("GET", "/containers/json/"), null);
    assert.equal(op("GET", "/_ping/"), null);
    assert.equal(op("GET", "/networks/"), "NetworkListTrailingSlash");
  });

  it("routes HEAD only for /_ping and the archive stat", () => {
    assert.equal(op("HEAD", "/containers/x/archive"), "ContainerArchiveInfo");
    assert.equal(op("HEAD", "/containers/json"), null);
    assert.equal(op("HEAD", "/info"), null);
  });

  it("prefers checkpoint routes registered before the container routes", () => {
    assert.equal(op("DELETE", "/containers/x/checkpoints/y"), "CheckpointDelete");
  });

  it("routes OPTIONS anywhere to the CORS preflight, and debug routes for any method", () => {
    assert.equal(op("OPTIONS", "/whatever/here"), "CorsPreflight");
    assert.equal(op("POST", "/debug/vars"), "DebugVars");
    assert.equal(op("DELETE", "/debug/pprof/heap"), "DebugPprofLookup");
  });

  it("returns null for what dockerd answers 404 page not found", () => {
    assert.equal(op("GET", "/nonexistent"), null);
    assert.equal(op("GET", "/"), null);
    assert.equal(op("PUT", "/containers/json"), null);
    assert.equal(op("GET", "/v1.41/containers/json"), null);
  });

  it("captures path variables by name", () => {
    assert.deepEqual({ ...matchRoute(index, "GET", "/containers/web/logs")?.params }, { name: "web" });
  });
});
