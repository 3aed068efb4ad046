import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parse } from "yaml";
import type { RouteDef } from "../../src/routing/route-def.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";

// Compiled to dist/test/unit: three levels up is the repo root.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const SPEC_DIR = process.env.DOCKER_API_SPECS
  ? path.resolve(process.env.DOCKER_API_SPECS)
  : path.resolve(REPO_ROOT, "../shared/docker-api");
const GENERATED_FILE = path.join(REPO_ROOT, "src/routing/route-table.generated.ts");
const GENERATOR_LIB = path.join(REPO_ROOT, "scripts/gen-routes-lib.mjs");

const SPECS_PRESENT = existsSync(SPEC_DIR);
if (!SPECS_PRESENT && process.env.CI === "true") {
  throw new Error(`Engine API specs not found at ${SPEC_DIR} (CI=true: the drift tests must run)`);
}
const specSkip = SPECS_PRESENT ? false : `Engine API specs not found at ${SPEC_DIR}; set DOCKER_API_SPECS`;

const VERSIONS = Array.from({ length: 15 }, (_, i) => `1.${41 + i}`);
const EXPECTED_COUNT = (v: string): number => (v === "1.41" ? 106 : v === "1.55" ? 108 : 107);
const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch"];

interface SpecOp {
  method: string;
  specPath: string;
  operationId: string;
}

/** Read a spec independently of the generator. */
function readSpec(version: string): SpecOp[] {
  const doc = parse(readFileSync(path.join(SPEC_DIR, `v${version}.yaml`), "utf8")) as {
    paths: Record<string, Record<string, { operationId?: string }>>;
  };
  const ops: SpecOp[] = [];
  for (const [specPath, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!HTTP_METHODS.includes(method)) continue;
      ops.push({ method: method.toUpperCase(), specPath, operationId: String(op.operationId) });
    }
  }
  return ops;
}

/** gorilla/mux path template -> anchored RegExp ("{x}" = [^/]+, "{x:re}" = re). */
function muxRegExp(template: string): RegExp {
  let out = "";
  let i = 0;
  while (i < template.length) {
    const ch = template.charAt(i);
    if (ch !== "{") {
      out += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      i++;
      continue;
    }
    let depth = 0;
    let j = i;
    for (; j < template.length; j++) {
      if (template[j] === "{") depth++;
      else if (template[j] === "}" && --depth === 0) break;
    }
    const body = template.slice(i + 1, j);
    const colon = body.indexOf(":");
    out += `(${colon < 0 ? "[^/]+" : body.slice(colon + 1)})`;
    i = j + 1;
  }
  return new RegExp(`^${out}$`);
}

/** First matching route, like gorilla/mux (path already decoded, cleaned and stripped of /v1.xx). */
function firstMatch(method: string, p: string): RouteDef | undefined {
  return ROUTES.find((r) => (r.method === "*" || r.method === method) && muxRegExp(r.muxPath).test(p));
}

describe("route table", () => {
  it("matches the generator output (drift)", { skip: specSkip }, async () => {
    const lib = (await import(pathToFileURL(GENERATOR_LIB).href)) as {
      generateRouteTableSource(specDir: string): string;
    };
    const committed = readFileSync(GENERATED_FILE, "utf8");
    const generated = lib.generateRouteTableSource(SPEC_DIR);
    assert.ok(
      committed === generated,
      "src/routing/route-table.generated.ts is out of date: run `npm run gen:routes` " +
        "(`node scripts/gen-routes.mjs --check` shows the first difference)",
    );
  });

  it("holds every spec route of v1.41..v1.55 with its operationId and first version", {
    skip: specSkip,
  }, () => {
    const firstSeen = new Map<string, string>();
    for (const version of VERSIONS) {
      const ops = readSpec(version);
      assert.equal(ops.length, EXPECTED_COUNT(version), `route count of v${version}`);
      for (const op of ops) {
        const key = `${op.method} ${op.specPath}`;
        if (!firstSeen.has(key)) firstSeen.set(key, version);
        const hits = ROUTES.filter((r) => r.method === op.method && r.specPath === op.specPath);
        assert.equal(hits.length, 1, `v${version}: ${key} must be in the table exactly once`);
        const [route] = hits;
        assert.equal(route?.operation, op.operationId, `v${version}: ${key}`);
        assert.equal(route?.source, "spec", `v${version}: ${key}`);
      }
    }
    const specRoutes = ROUTES.filter((r) => r.source === "spec");
    assert.equal(specRoutes.length, 108);
    for (const r of specRoutes) {
      const key = `${r.method} ${r.specPath}`;
      assert.equal(r.since, firstSeen.get(key), `since of ${key}`);
    }
    assert.equal(ROUTES.find((r) => r.operation === "VolumeUpdate")?.since, "1.42");
    assert.equal(ROUTES.find((r) => r.operation === "ImageAttestations")?.since, "1.55");
    assert.equal(ROUTES.find((r) => r.operation === "Session")?.since, "1.41");
  });

  it("has unique operation names and unique (method, muxPath) pairs", () => {
    const names = ROUTES.map((r) => r.operation);
    assert.equal(new Set(names).size, names.length, "duplicate operation name");
    const pairs = ROUTES.map((r) => `${r.method} ${r.muxPath}`);
    assert.equal(new Set(pairs).size, pairs.length, "duplicate (method, muxPath)");
  });

  it("starts every muxPath with a literal segment (except the OPTIONS catch-all)", () => {
    for (const r of ROUTES) {
      assert.ok(r.muxPath.startsWith("/"), `${r.operation}: ${r.muxPath}`);
      if (r.operation === "CorsPreflight") continue;
      const first = r.muxPath.split("/")[1] ?? "";
      assert.match(first, /^[^{}]+$/, `${r.operation}: first segment of ${r.muxPath} must be literal`);
      assert.equal(r.section, r.specPath.split("/")[1], `${r.operation}: section`);
    }
    const variableFirst = ROUTES.filter((r) => /^\/\{/.test(r.muxPath));
    assert.deepEqual(
      variableFirst.map((r) => [r.operation, r.method, r.muxPath, r.section]),
      [["CorsPreflight", "OPTIONS", "/{anyroute:.*}", "options"]],
    );
  });

  it("has the routes the daemon serves outside the spec", () => {
    const d = (method: string, muxPath: string, operation: string, section: string, kind: string) => ({
      method,
      muxPath,
      operation,
      section,
      kind,
    });
    const expected = [
      d("GET", "/containers/{name:.*}/checkpoints", "CheckpointList", "containers", "plain"),
      d("POST", "/containers/{name:.*}/checkpoints", "CheckpointCreate", "containers", "plain"),
      d("DELETE", "/containers/{name}/checkpoints/{checkpoint}", "CheckpointDelete", "containers", "plain"),
      d("POST", "/containers/{name:.*}/copy", "ContainerCopy", "containers", "stream"),
      d("OPTIONS", "/{anyroute:.*}", "CorsPreflight", "options", "plain"),
      d("POST", "/build/cancel", "BuildCancel", "build", "plain"),
      d("POST", "/grpc", "Grpc", "grpc", "hijack"),
      d("GET", "/networks/", "NetworkListTrailingSlash", "networks", "plain"),
      d("*", "/debug/vars", "DebugVars", "debug", "plain"),
      d("*", "/debug/pprof/", "DebugPprofIndex", "debug", "plain"),
      d("*", "/debug/pprof/cmdline", "DebugPprofCmdline", "debug", "plain"),
      d("*", "/debug/pprof/profile", "DebugPprofProfile", "debug", "stream"),
      d("*", "/debug/pprof/symbol", "DebugPprofSymbol", "debug", "plain"),
      d("*", "/debug/pprof/trace", "DebugPprofTrace", "debug", "stream"),
      d("*", "/debug/pprof/{name}", "DebugPprofLookup", "debug", "stream"),
    ];
    const actual = ROUTES.filter((r) => r.source === "daemon");
    for (const r of actual) assert.equal(r.since, "daemon", r.operation);
    assert.deepEqual(
      actual.map((r) => ({
        method: r.method,
        muxPath: r.muxPath,
        operation: r.operation,
        section: r.section,
        kind: r.kind,
      })),
      expected,
    );
  });

  it("classifies hijacked and streaming routes", () => {
    const byKind = (kind: string) =>
      ROUTES.filter((r) => r.kind === kind)
        .map((r) => r.operation)
        .sort();
    assert.deepEqual(byKind("hijack"), [
      "ContainerAttach",
      "ContainerAttachWebsocket",
      "ExecStart",
      "Grpc",
      "Session",
    ]);
    for (const op of [
      "SystemEvents",
      "ContainerLogs",
      "ServiceLogs",
      "TaskLogs",
      "ContainerStats",
      "ContainerWait",
      "ContainerExport",
      "ContainerArchive",
      "PutContainerArchive",
      "ImageGet",
      "ImageGetAll",
      "ImageLoad",
      "ImageCreate",
      "ImagePush",
      "ImageBuild",
      "PluginPull",
      "PluginUpgrade",
      "PluginPush",
      "PluginCreate",
      "DebugPprofProfile",
      "DebugPprofTrace",
    ]) {
      assert.equal(ROUTES.find((r) => r.operation === op)?.kind, "stream", op);
    }
    assert.equal(ROUTES.find((r) => r.operation === "ContainerExec")?.section, "containers");
  });

  it("keeps dockerd's registration order (first match wins)", () => {
    const cases: Array<[string, string, string]> = [
      ["DELETE", "/containers/abc/checkpoints/cp1", "CheckpointDelete"],
      ["DELETE", "/containers/abc", "ContainerDelete"],
      ["DELETE", "/containers/abc/", "ContainerDelete"],
      ["DELETE", "/containers/json", "ContainerDelete"],
      ["GET", "/containers/abc/checkpoints", "CheckpointList"],
      ["GET", "/containers/json", "ContainerList"],
      ["GET", "/containers/x/y/json", "ContainerInspect"],
      ["POST", "/containers/create/start", "ContainerStart"],
      ["POST", "/containers/abc/exec", "ContainerExec"],
      ["POST", "/exec/abc/start", "ExecStart"],
      ["GET", "/images/docker.io/library/x:1/json", "ImageInspect"],
      ["GET", "/networks", "NetworkList"],
      ["GET", "/networks/", "NetworkListTrailingSlash"],
      ["GET", "/networks/bridge/", "NetworkInspect"],
      ["GET", "/services/abc", "ServiceInspect"],
      ["HEAD", "/_ping", "SystemPingHead"],
      ["OPTIONS", "/debug/vars", "CorsPreflight"],
      ["OPTIONS", "/containers/json", "CorsPreflight"],
      ["POST", "/debug/vars", "DebugVars"],
      ["GET", "/debug/pprof/profile", "DebugPprofProfile"],
      ["GET", "/debug/pprof/heap", "DebugPprofLookup"],
    ];
    for (const [method, p, op] of cases) {
      assert.equal(firstMatch(method, p)?.operation, op, `${method} ${p}`);
    }
    for (const [method, p] of [
      ["GET", "/services/a/b"],
      ["GET", "/containers/json/"],
      ["HEAD", "/containers/json"],
      ["GET", "/debug/pprof/a/b"],
      ["get", "/containers/json"],
    ] as const) {
      assert.equal(firstMatch(method, p), undefined, `${method} ${p} must not match`);
    }
    const index = (op: string) => ROUTES.findIndex((r) => r.operation === op);
    assert.ok(index("CheckpointDelete") < index("ContainerDelete"));
    const firstAny = ROUTES.findIndex((r) => r.method === "*");
    assert.ok(
      index("CorsPreflight") < firstAny,
      "OPTIONS catch-all must precede the any-method debug routes",
    );
  });
});
