// Builds src/routing/route-table.generated.ts from the Engine API specs (v1.41..v1.55) plus
// dockerd's router registration list below. Used by scripts/gen-routes.mjs and by the drift test
// (test/unit/route-table.test.ts). Plain Node ESM, no build step.
//
// Why two sources:
//   * the specs give the operation names (operationId), the spec paths, the first version that lists a
//     route, and the media types we derive `kind` from;
//   * the order and the real path patterns come from dockerd's gorilla/mux registration, which the specs
//     do not describe. gorilla/mux is first-match-wins, so the table keeps dockerd's order.
//
// Registration order (ROUTERS below) is moby v20.10.24 (commit 5d6db842238e):
//   cmd/dockerd/daemon.go initRouter: checkpoint, container, image, system, volume, build, session, swarm,
//   plugin, distribution, grpc (if a backend implements it), network (if the network controller is on);
//   then api/server/server.go createMux registers the debug routes last, as m.Path("/debug"+path) with
//   no .Methods() and no version prefix. Each route is registered twice: "/v{version:[0-9.]+}"+path, then
//   path; this table lists the unprefixed form.
// Within each router, the order is its initRoutes slice (api/server/router/<name>/<name>.go; swarm is
// swarm/cluster.go, the system router builds its slice in NewRouter).
//
// Compared with master (moby b985e2313a86, daemon/command/daemon.go buildRouters, daemon/server/server.go
// CreateMux, daemon/server/router/...):
//   * router order: master is ..., distribution, network, debug, grpc. 20.10 is ..., distribution, grpc,
//     network, then debug. The grpc, network and debug routes start with different literal segments, so
//     the two orders give the same first match for every request.
//   * debug routes: master (since 28.0) registers them as a normal router: GET only, with and without the
//     version prefix. 20.10..27.x: any method, unprefixed only. We keep one entry per path with method
//     "*" (any), the superset of both.
//   * POST /containers/{name:.*}/copy exists in 20.10 (until 25.x) and is gone on master (since 26.0).
//   * PUT /volumes/{name:.*} (API 1.42) and GET /images/{name:.*}/attestations (API 1.55) exist only on
//     master; they are placed where master registers them inside their router.
//   * Variable patterns: identical for every route present in both (also checked at v23.0.0, v24.0.0,
//     v25.0.0, v26.0.0, v27.0.1 and v28.0.0), so there was no superset to choose.
//   * master wraps some routes in router.WithMinimumAPIVersion (400 below that version); RouteDef has no
//     field for that and the spec `since` is not the same thing.
//
// gorilla/mux variable syntax: "{name}" matches [^/]+; "{name:re}" matches re. Path templates are anchored
// at both ends; ".*" crosses "/" and may be empty.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

export const FIRST_MINOR = 41;
export const LAST_MINOR = 55;
/** "1.41" .. "1.55" */
export const SPEC_VERSIONS = Array.from(
  { length: LAST_MINOR - FIRST_MINOR + 1 },
  (_, i) => `1.${FIRST_MINOR + i}`,
);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const GENERATED_RELPATH = "src/routing/route-table.generated.ts";
export const GENERATED_FILE = path.join(REPO_ROOT, GENERATED_RELPATH);

/** The specs folder: $DOCKER_API_SPECS, else ../shared/docker-api next to the repo. */
export function defaultSpecDir(env = process.env) {
  const override = env.DOCKER_API_SPECS;
  return override ? path.resolve(override) : path.resolve(REPO_ROOT, "../shared/docker-api");
}

const V20 = "v20.10.24";

/**
 * A route that some spec documents. Operation name and spec path come from the spec.
 * @param {string} method
 * @param {string} muxPath
 */
function spec(method, muxPath) {
  return { method, muxPath, source: "spec" };
}

/**
 * A route the daemon serves that no spec lists.
 * @param {string} method "*" = any method (20.10 debug routes)
 * @param {string} muxPath
 * @param {string} operation
 * @param {string} specPath spec-style form (variables named as the spec names them for that resource)
 * @param {{ section?: string }} [extra]
 */
function daemon(method, muxPath, operation, specPath, extra = {}) {
  return { method, muxPath, source: "daemon", operation, specPath, ...extra };
}

/** dockerd's routers in registration order, each with its routes in registration order. */
const ROUTERS = [
  {
    name: "checkpoint",
    // Registered before the container router "or the DELETE gets masked" (cmd/dockerd/daemon.go).
    // Experimental: with experimental off, the routes match and answer 501.
    file: "api/server/router/checkpoint/checkpoint.go",
    routes: [
      daemon("GET", "/containers/{name:.*}/checkpoints", "CheckpointList", "/containers/{id}/checkpoints"),
      daemon("POST", "/containers/{name:.*}/checkpoints", "CheckpointCreate", "/containers/{id}/checkpoints"),
      daemon(
        "DELETE",
        "/containers/{name}/checkpoints/{checkpoint}",
        "CheckpointDelete",
        "/containers/{id}/checkpoints/{checkpoint}",
      ),
    ],
  },
  {
    name: "container",
    file: "api/server/router/container/container.go",
    routes: [
      spec("HEAD", "/containers/{name:.*}/archive"),
      spec("GET", "/containers/json"),
      spec("GET", "/containers/{name:.*}/export"),
      spec("GET", "/containers/{name:.*}/changes"),
      spec("GET", "/containers/{name:.*}/json"),
      spec("GET", "/containers/{name:.*}/top"),
      spec("GET", "/containers/{name:.*}/logs"),
      spec("GET", "/containers/{name:.*}/stats"),
      spec("GET", "/containers/{name:.*}/attach/ws"),
      spec("GET", "/exec/{id:.*}/json"),
      spec("GET", "/containers/{name:.*}/archive"),
      spec("POST", "/containers/create"),
      spec("POST", "/containers/{name:.*}/kill"),
      spec("POST", "/containers/{name:.*}/pause"),
      spec("POST", "/containers/{name:.*}/unpause"),
      spec("POST", "/containers/{name:.*}/restart"),
      spec("POST", "/containers/{name:.*}/start"),
      spec("POST", "/containers/{name:.*}/stop"),
      spec("POST", "/containers/{name:.*}/wait"),
      spec("POST", "/containers/{name:.*}/resize"),
      spec("POST", "/containers/{name:.*}/attach"),
      // 20.10 only (removed in 26.0): "Deprecated since 1.8, Errors out since 1.12". The handler answers
      // 404 for API >= 1.24 but still streams a tar of any container path for /v1.12../v1.23 requests.
      daemon("POST", "/containers/{name:.*}/copy", "ContainerCopy", "/containers/{id}/copy"),
      spec("POST", "/containers/{name:.*}/exec"),
      spec("POST", "/exec/{name:.*}/start"),
      spec("POST", "/exec/{name:.*}/resize"),
      spec("POST", "/containers/{name:.*}/rename"),
      spec("POST", "/containers/{name:.*}/update"),
      spec("POST", "/containers/prune"),
      spec("POST", "/commit"),
      spec("PUT", "/containers/{name:.*}/archive"),
      spec("DELETE", "/containers/{name:.*}"),
    ],
  },
  {
    name: "image",
    file: "api/server/router/image/image.go",
    routes: [
      spec("GET", "/images/json"),
      spec("GET", "/images/search"),
      spec("GET", "/images/get"),
      spec("GET", "/images/{name:.*}/get"),
      spec("GET", "/images/{name:.*}/history"),
      spec("GET", "/images/{name:.*}/json"),
      // master only (API 1.55, WithMinimumAPIVersion("1.55")), registered right after .../json.
      spec("GET", "/images/{name:.*}/attestations"),
      spec("POST", "/images/load"),
      spec("POST", "/images/create"),
      spec("POST", "/images/{name:.*}/push"),
      spec("POST", "/images/{name:.*}/tag"),
      spec("POST", "/images/prune"),
      spec("DELETE", "/images/{name:.*}"),
    ],
  },
  {
    name: "system",
    file: "api/server/router/system/system.go",
    routes: [
      // CORS preflight: any path, 200 with an empty body. The only route whose first segment is a variable.
      daemon("OPTIONS", "/{anyroute:.*}", "CorsPreflight", "/{anyroute}", { section: "options" }),
      spec("GET", "/_ping"),
      spec("HEAD", "/_ping"),
      spec("GET", "/events"),
      spec("GET", "/info"),
      spec("GET", "/version"),
      spec("GET", "/system/df"),
      spec("POST", "/auth"),
    ],
  },
  {
    name: "volume",
    file: "api/server/router/volume/volume.go",
    routes: [
      spec("GET", "/volumes"),
      spec("GET", "/volumes/{name:.*}"),
      spec("POST", "/volumes/create"),
      spec("POST", "/volumes/prune"),
      // master only (API 1.42, cluster volumes), registered between prune and delete.
      spec("PUT", "/volumes/{name:.*}"),
      spec("DELETE", "/volumes/{name:.*}"),
    ],
  },
  {
    name: "build",
    file: "api/server/router/build/build.go",
    routes: [
      spec("POST", "/build"),
      spec("POST", "/build/prune"),
      daemon("POST", "/build/cancel", "BuildCancel", "/build/cancel"),
    ],
  },
  {
    name: "session",
    file: "api/server/router/session/session.go",
    routes: [spec("POST", "/session")],
  },
  {
    name: "swarm",
    file: "api/server/router/swarm/cluster.go",
    routes: [
      spec("POST", "/swarm/init"),
      spec("POST", "/swarm/join"),
      spec("POST", "/swarm/leave"),
      spec("GET", "/swarm"),
      spec("GET", "/swarm/unlockkey"),
      spec("POST", "/swarm/update"),
      spec("POST", "/swarm/unlock"),
      spec("GET", "/services"),
      spec("GET", "/services/{id}"),
      spec("POST", "/services/create"),
      spec("POST", "/services/{id}/update"),
      spec("DELETE", "/services/{id}"),
      spec("GET", "/services/{id}/logs"),
      spec("GET", "/nodes"),
      spec("GET", "/nodes/{id}"),
      spec("DELETE", "/nodes/{id}"),
      spec("POST", "/nodes/{id}/update"),
      spec("GET", "/tasks"),
      spec("GET", "/tasks/{id}"),
      spec("GET", "/tasks/{id}/logs"),
      spec("GET", "/secrets"),
      spec("POST", "/secrets/create"),
      spec("DELETE", "/secrets/{id}"),
      spec("GET", "/secrets/{id}"),
      spec("POST", "/secrets/{id}/update"),
      spec("GET", "/configs"),
      spec("POST", "/configs/create"),
      spec("DELETE", "/configs/{id}"),
      spec("GET", "/configs/{id}"),
      spec("POST", "/configs/{id}/update"),
    ],
  },
  {
    name: "plugin",
    file: "api/server/router/plugin/plugin.go",
    routes: [
      spec("GET", "/plugins"),
      spec("GET", "/plugins/{name:.*}/json"),
      spec("GET", "/plugins/privileges"),
      spec("DELETE", "/plugins/{name:.*}"),
      spec("POST", "/plugins/{name:.*}/enable"),
      spec("POST", "/plugins/{name:.*}/disable"),
      spec("POST", "/plugins/pull"),
      spec("POST", "/plugins/{name:.*}/push"),
      spec("POST", "/plugins/{name:.*}/upgrade"),
      spec("POST", "/plugins/{name:.*}/set"),
      spec("POST", "/plugins/create"),
    ],
  },
  {
    name: "distribution",
    file: "api/server/router/distribution/distribution.go",
    routes: [spec("GET", "/distribution/{name:.*}/json")],
  },
  {
    // 20.10: appended after distribution when a backend implements it. master: appended last, after debug.
    name: "grpc",
    file: "api/server/router/grpc/grpc.go",
    routes: [daemon("POST", "/grpc", "Grpc", "/grpc")],
  },
  {
    // 20.10: appended after grpc when the network controller is enabled. master: after distribution.
    name: "network",
    file: "api/server/router/network/network.go",
    routes: [
      spec("GET", "/networks"),
      // Explicit trailing-slash alias of NetworkList (the only such route; StrictSlash is off).
      daemon("GET", "/networks/", "NetworkListTrailingSlash", "/networks/"),
      spec("GET", "/networks/{id:.+}"),
      spec("POST", "/networks/create"),
      spec("POST", "/networks/{id:.*}/connect"),
      spec("POST", "/networks/{id:.*}/disconnect"),
      spec("POST", "/networks/prune"),
      spec("DELETE", "/networks/{id:.*}"),
    ],
  },
  {
    // 20.10: api/server/server.go createMux, after all routers: m.Path("/debug"+r.Path()).Handler(f), i.e. any
    // method and no version prefix; the paths come from api/server/router/debug/debug.go ("/vars", ...).
    // master: daemon/server/router/debug/debug.go, GET only, with and without the version prefix.
    // Always on (not only with --debug). Method "*" = any method.
    name: "debug",
    file: "api/server/router/debug/debug.go + api/server/server.go",
    routes: [
      daemon("*", "/debug/vars", "DebugVars", "/debug/vars"),
      daemon("*", "/debug/pprof/", "DebugPprofIndex", "/debug/pprof/"),
      daemon("*", "/debug/pprof/cmdline", "DebugPprofCmdline", "/debug/pprof/cmdline"),
      daemon("*", "/debug/pprof/profile", "DebugPprofProfile", "/debug/pprof/profile"),
      daemon("*", "/debug/pprof/symbol", "DebugPprofSymbol", "/debug/pprof/symbol"),
      daemon("*", "/debug/pprof/trace", "DebugPprofTrace", "/debug/pprof/trace"),
      daemon("*", "/debug/pprof/{name}", "DebugPprofLookup", "/debug/pprof/{name}"),
    ],
  },
];

/** Connections taken over by the daemon (see docs: hijacked connections). A spec 101 response also counts. */
const HIJACK = new Set(["ContainerAttach", "ContainerAttachWebsocket", "ExecStart", "Session", "Grpc"]);

/**
 * Long-lived or unbounded bodies, either direction. Spec media types (below) add to this list; the list
 * covers what the media types miss (e.g. ImagePush and the plugin routes declare no stream media type).
 */
const STREAM = new Set([
  "SystemEvents",
  "ContainerLogs",
  "ServiceLogs",
  "TaskLogs",
  "ContainerStats",
  "ContainerWait",
  "ContainerExport",
  "ContainerArchive",
  "PutContainerArchive",
  "ImageGetAll",
  "ImageGet",
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
  // pprof.Handler(name) honours ?seconds=N (delta profiles, Go >= 1.16; 20.10.24 is built with Go 1.19).
  "DebugPprofLookup",
  // 20.10: streams an application/x-tar of a container path for API < 1.24.
  "ContainerCopy",
]);

/** Response media types that mean a stream. */
const STREAM_PRODUCES = new Set([
  "application/vnd.docker.raw-stream",
  "application/vnd.docker.multiplexed-stream",
  "application/x-tar",
  "application/octet-stream",
  "application/jsonl",
  "application/x-ndjson",
  "application/json-seq",
]);
/** Request media types that mean a stream. (Not application/octet-stream: ContainerCreate and
 *  ContainerResize declare it for ordinary small bodies.) */
const STREAM_CONSUMES = new Set(["application/x-tar"]);

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch"];

/**
 * Replace every gorilla/mux variable ("{x}" or "{x:regex}", braces may nest) by "{}".
 * @param {string} p
 */
export function normalizePath(p) {
  let out = "";
  let depth = 0;
  for (const ch of p) {
    if (ch === "{") {
      if (depth === 0) out += "{}";
      depth++;
    } else if (ch === "}") {
      depth--;
      if (depth < 0) throw new Error(`unbalanced braces in ${p}`);
    } else if (depth === 0) {
      out += ch;
    }
  }
  if (depth !== 0) throw new Error(`unbalanced braces in ${p}`);
  return out;
}

/**
 * Read one spec version: every (method, path) with its operationId and media types.
 * @param {string} specDir
 * @param {string} version "1.NN"
 */
export function readSpec(specDir, version) {
  const file = path.join(specDir, `v${version}.yaml`);
  const doc = parse(readFileSync(file, "utf8"));
  if (String(doc?.info?.version) !== version) {
    throw new Error(`${file}: info.version is ${doc?.info?.version}, expected ${version}`);
  }
  const ops = [];
  for (const [specPath, item] of Object.entries(doc.paths ?? {})) {
    for (const [key, op] of Object.entries(item ?? {})) {
      if (!HTTP_METHODS.includes(key)) {
        throw new Error(
          `${file}: ${specPath}: unexpected key "${key}" (path-level parameters are not handled)`,
        );
      }
      if (!op?.operationId) throw new Error(`${file}: ${key.toUpperCase()} ${specPath} has no operationId`);
      ops.push({
        method: key.toUpperCase(),
        specPath,
        operationId: op.operationId,
        produces: op.produces ?? [],
        consumes: op.consumes ?? [],
        responses: Object.keys(op.responses ?? {}),
      });
    }
  }
  return ops;
}

/**
 * Build the route list (plain objects in RouteDef shape) from the specs and ROUTERS.
 * Throws if the specs and the registration list disagree in any way.
 * @param {string} specDir
 */
export function buildRoutes(specDir) {
  /** key "METHOD normalized" -> merged spec info */
  const specRoutes = new Map();
  for (const version of SPEC_VERSIONS) {
    for (const op of readSpec(specDir, version)) {
      const key = `${op.method} ${normalizePath(op.specPath)}`;
      const seen = specRoutes.get(key);
      if (!seen) {
        specRoutes.set(key, {
          ...op,
          since: version,
          streamHint: false,
          hijackHint: false,
        });
      } else if (seen.specPath !== op.specPath || seen.operationId !== op.operationId) {
        throw new Error(
          `v${version}: ${op.method} ${op.specPath} (${op.operationId}) differs from v${seen.since}: ` +
            `${seen.specPath} (${seen.operationId})`,
        );
      }
      const entry = specRoutes.get(key);
      if (
        op.produces.some((m) => STREAM_PRODUCES.has(m)) ||
        op.consumes.some((m) => STREAM_CONSUMES.has(m))
      ) {
        entry.streamHint = true;
      }
      if (op.responses.includes("101")) entry.hijackHint = true;
    }
  }

  const routes = [];
  const used = new Set();
  const keys = new Set();
  for (const router of ROUTERS) {
    for (const r of router.routes) {
      const key = `${r.method} ${normalizePath(r.muxPath)}`;
      if (keys.has(key)) throw new Error(`duplicate registration ${key}`);
      keys.add(key);
      const s = specRoutes.get(key);
      let def;
      if (r.source === "spec") {
        if (!s)
          throw new Error(
            `${r.method} ${r.muxPath} (${router.name} router) is in no spec v${SPEC_VERSIONS[0]}..`,
          );
        used.add(key);
        def = {
          operation: s.operationId,
          method: r.method,
          specPath: s.specPath,
          muxPath: r.muxPath,
          section: s.specPath.split("/")[1],
          since: s.since,
          kind: kindOf(s.operationId, s.streamHint, s.hijackHint),
          source: "spec",
        };
      } else {
        if (s) {
          throw new Error(
            `${r.method} ${r.muxPath} is listed as daemon-only but spec v${s.since} has ${s.operationId}`,
          );
        }
        def = {
          operation: r.operation,
          method: r.method,
          specPath: r.specPath,
          muxPath: r.muxPath,
          section: r.section ?? r.specPath.split("/")[1],
          since: "daemon",
          kind: kindOf(r.operation, false, false),
          source: "daemon",
        };
      }
      routes.push({ router: router.name, file: router.file, def });
    }
  }

  const missing = [...specRoutes.keys()].filter((k) => !used.has(k));
  if (missing.length > 0) {
    throw new Error(`spec routes with no dockerd registration in ROUTERS: ${missing.join(", ")}`);
  }
  const names = new Set();
  for (const { def } of routes) {
    if (names.has(def.operation)) throw new Error(`duplicate operation name ${def.operation}`);
    names.add(def.operation);
    if (!def.section) throw new Error(`no section for ${def.method} ${def.specPath}`);
  }
  for (const n of [...HIJACK, ...STREAM]) {
    if (!names.has(n)) throw new Error(`kind override names unknown operation ${n}`);
  }
  return routes;
}

/**
 * @param {string} operation
 * @param {boolean} streamHint
 * @param {boolean} hijackHint
 */
function kindOf(operation, streamHint, hijackHint) {
  if (HIJACK.has(operation) || hijackHint) return "hijack";
  if (STREAM.has(operation) || streamHint) return "stream";
  return "plain";
}

const FIELDS = ["operation", "method", "specPath", "muxPath", "section", "since", "kind", "source"];

/**
 * The full text of src/routing/route-table.generated.ts.
 * @param {string} specDir
 */
export function generateRouteTableSource(specDir) {
  const routes = buildRoutes(specDir);
  const first = SPEC_VERSIONS[0];
  const last = SPEC_VERSIONS[SPEC_VERSIONS.length - 1];
  const lines = [
    `// generated by scripts/gen-routes.mjs from the Engine API specs v${first}..v${last}; do not edit`,
    "// Regenerate with `npm run gen:routes`; `node scripts/gen-routes.mjs --check` reports drift.",
    "//",
    "// One entry per (method, path) dockerd routes, in dockerd's registration order (gorilla/mux is",
    `// first-match-wins). Order and muxPath patterns: moby ${V20} (cmd/dockerd/daemon.go initRouter,`,
    '// api/server/server.go createMux, api/server/router/*), plus the routes master adds. Method "*" means any',
    "// method. The version prefix /v{version:[0-9.]+} is not part of muxPath. See scripts/gen-routes-lib.mjs.",
    "",
    'import type { RouteDef } from "./route-def.js";',
    "",
    "export const ROUTES: readonly RouteDef[] = [",
  ];
  let current = "";
  for (const { router, file, def } of routes) {
    if (router !== current) {
      current = router;
      lines.push(`  // ${router} router (${file})`);
    }
    lines.push("  {");
    for (const f of FIELDS) lines.push(`    ${f}: ${JSON.stringify(def[f])},`);
    lines.push("  },");
  }
  lines.push("];", "");
  return lines.join("\n");
}
