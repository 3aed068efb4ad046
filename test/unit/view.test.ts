/**
 * The view compiled from a profile: visibility semantics, redaction paths, the operation table's
 * coverage of the route table, and the policy file's validation of `visibility:` and `redact:`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PolicyFileError, parsePolicyText } from "../../src/config/policy-file.js";
import { filePolicy } from "../../src/policy/file-policy.js";
import { anyGlob } from "../../src/policy/glob.js";
import {
  compileView,
  containerNames,
  imageNames,
  REDACTION_PATHS,
  REDACTIONS,
  VIEW_ROLES,
} from "../../src/proxy/view.js";
import { encodePathValue, notFoundMessage, pinTarget } from "../../src/proxy/visibility.js";
import { canonicalTarget } from "../../src/routing/canonical.js";
import { buildRouteIndex, matchRoute } from "../../src/routing/match.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";

const team = compileView({
  visibility: { labels: { "com.example.team": "a", tier: null }, names: ["shared-*"] },
});

describe("visibility", () => {
  it("is undefined without visibility and redact", () => {
    assert.equal(compileView({}), undefined);
    assert.equal(compileView({ redact: [] }), undefined);
  });

  it("all labels must match (null: present with any value) OR any name glob", () => {
    assert.ok(team);
    const v = (names: string[], labels: unknown) => team.visible({ names, labels });
    assert.equal(v(["x"], { "com.example.team": "a", tier: "web" }), true);
    assert.equal(v(["x"], { "com.example.team": "a", tier: "" }), true, "null: any value, empty too");
    assert.equal(v(["x"], { "com.example.team": "a" }), false, "tier is missing");
    assert.equal(v(["x"], { "com.example.team": "b", tier: "web" }), false);
    assert.equal(v(["x"], { "com.example.team": "A", tier: "web" }), false, "values are case-sensitive");
    assert.equal(v(["shared-cache"], null), true, "a name is enough");
    assert.equal(v(["x", "shared-cache"], undefined), true, "any of its names");
    assert.equal(v(["shared"], {}), false);
    assert.equal(v([], null), false);
  });

  it("labels only, names only", () => {
    const labels = compileView({ visibility: { labels: { a: "1" } } });
    assert.equal(labels?.visible({ names: ["anything"], labels: { a: "1" } }), true);
    assert.equal(labels?.visible({ names: ["anything"], labels: { a: "2" } }), false);
    const names = compileView({ visibility: { names: ["web", "ghcr.io/team-a/*"] } });
    assert.equal(names?.visible({ names: ["web"], labels: { a: "1" } }), true);
    assert.equal(names?.visible({ names: ["ghcr.io/team-a/app:1"], labels: null }), true);
    assert.equal(names?.visible({ names: ["ghcr.io/team-a/x/app:1"], labels: null }), false, "* stops at /");
    assert.equal(names?.visible({ names: ["web2"], labels: null }), false, "the whole name");
  });

  it("a label inherited from Object.prototype never matches", () => {
    const v = compileView({ visibility: { labels: { constructor: null, toString: null } } });
    assert.equal(v?.visible({ names: [], labels: {} }), false);
  });

  it("without visibility (redact only) everything is visible", () => {
    const v = compileView({ redact: ["container.env"] });
    assert.equal(v?.visibility, undefined);
    assert.equal(v?.visible({ names: [], labels: null }), true);
  });

  it("globs: * ? ** and escaping", () => {
    const m = anyGlob(["a.b-*", "x?z", "reg/**", "(c)+[d]"]);
    assert.equal(m("a.b-c"), true);
    assert.equal(m("aXb-c"), false, ". is literal");
    assert.equal(m("xyz"), true);
    assert.equal(m("x/z"), false);
    assert.equal(m("reg/a/b:1"), true);
    assert.equal(m("(c)+[d]"), true);
  });

  it("names: containers without the leading slash and without legacy link names; images without <none>", () => {
    assert.deepEqual(containerNames(["/web", "/other/alias"]), ["web"]);
    assert.deepEqual(containerNames("/web"), ["web"]);
    assert.deepEqual(imageNames(["<none>:<none>", "busybox:1"]), ["busybox:1"]);
    assert.deepEqual(imageNames(null), []);
  });
});

describe("redaction", () => {
  const inspect = () => ({
    Id: "abc",
    Config: { Env: ["SECRET=1"], Labels: { a: "1" }, Image: "busybox" },
    Mounts: [{ Type: "bind", Source: "/srv/secret", Destination: "/data" }],
    HostConfig: { Binds: ["/srv/secret:/data"], Mounts: [{ Source: "/x", Target: "/y" }], Memory: 0 },
  });

  it("container.env and container.mounts on ContainerInspect", () => {
    const v = compileView({ redact: ["container.env", "container.mounts"] });
    const answer = inspect();
    assert.equal(v?.redactAnswer("ContainerInspect", answer), 4);
    assert.deepEqual(answer, {
      Id: "abc",
      Config: { Labels: { a: "1" }, Image: "busybox" },
      Mounts: [{ Type: "bind", Destination: "/data" }],
      HostConfig: { Mounts: [{ Target: "/y" }], Memory: 0 },
    });
    assert.equal(v?.redactAnswer("ContainerInspect", answer), 0, "nothing left to remove");
    assert.equal(v?.redactAnswer("ContainerTop", inspect()), 0, "other operations are untouched");
  });

  it("lists, services, tasks, secrets, configs, swarm", () => {
    const v = compileView({ redact: [...REDACTIONS] });
    const list = [{ Mounts: [{ Source: "/a" }, { Source: "/b" }] }, { Mounts: null }];
    v?.redactAnswer("ContainerList", list);
    assert.deepEqual(list, [{ Mounts: [{}, {}] }, { Mounts: null }]);
    const service = {
      Spec: { TaskTemplate: { ContainerSpec: { Env: ["A=1"], Mounts: [{ Source: "/s" }], Image: "i" } } },
      PreviousSpec: { TaskTemplate: { ContainerSpec: { Env: ["A=0"] } } },
    };
    v?.redactAnswer("ServiceInspect", service);
    assert.deepEqual(service, {
      Spec: { TaskTemplate: { ContainerSpec: { Mounts: [{}], Image: "i" } } },
      PreviousSpec: { TaskTemplate: { ContainerSpec: {} } },
    });
    const tasks = [{ Spec: { ContainerSpec: { Env: ["A=1"], Image: "i" } } }];
    v?.redactAnswer("TaskList", tasks);
    assert.deepEqual(tasks, [{ Spec: { ContainerSpec: { Image: "i" } } }]);
    const secret = { ID: "s", Spec: { Name: "n", Data: "c2VjcmV0" } };
    v?.redactAnswer("SecretInspect", secret);
    assert.deepEqual(secret, { ID: "s", Spec: { Name: "n" } });
    const configs = [{ Spec: { Name: "c", Data: "eA==" } }];
    v?.redactAnswer("ConfigList", configs);
    assert.deepEqual(configs, [{ Spec: { Name: "c" } }]);
    const swarm = { ID: "x", JoinTokens: { Worker: "SWMTKN-1-w", Manager: "SWMTKN-1-m" } };
    v?.redactAnswer("SwarmInspect", swarm);
    assert.deepEqual(swarm, { ID: "x" });
  });

  it("every redaction path names a real operation", () => {
    const operations = new Set(ROUTES.map((r) => r.operation));
    for (const byOp of Object.values(REDACTION_PATHS))
      for (const op of Object.keys(byOp)) assert.ok(operations.has(op), op);
  });
});

describe("which operation means what for the view", () => {
  it("every route acting on a container, exec, image, network, volume, service or task has a role", () => {
    const objectSections = /^\/(containers|exec|images|networks|volumes|services|tasks)\/\{/;
    const missing = ROUTES.filter(
      (r) => objectSections.test(r.specPath) && VIEW_ROLES[r.operation] === undefined,
    ).map((r) => r.operation);
    assert.deepEqual(missing, []);
    const operations = new Set(ROUTES.map((r) => r.operation));
    for (const op of Object.keys(VIEW_ROLES)) assert.ok(operations.has(op), `${op} is not an operation`);
  });

  it("every list of governed objects is filtered and every prune refused", () => {
    for (const op of ["ContainerList", "ServiceList", "TaskList", "NetworkList", "VolumeList", "ImageList"])
      assert.equal(VIEW_ROLES[op]?.role, "list", op);
    for (const r of ROUTES.filter((r) => r.operation.endsWith("Prune") && r.operation !== "BuildPrune"))
      assert.equal(VIEW_ROLES[r.operation]?.role, "prune", r.operation);
  });

  it("roles name the route's own path parameter", () => {
    const index = buildRouteIndex(ROUTES);
    for (const route of ROUTES) {
      const role = VIEW_ROLES[route.operation];
      if (role?.role !== "object") continue;
      assert.ok(
        route.muxPath.includes(`{${role.param}`),
        `${route.operation}: ${route.muxPath} has no {${role.param}}`,
      );
      const path = route.muxPath.replace(/\{[^}]+\}/g, "x");
      const match = matchRoute(index, route.method === "*" ? "GET" : route.method, path);
      assert.equal(match?.route.operation, route.operation);
    }
  });
});

describe("resolution helpers", () => {
  const index = buildRouteIndex(ROUTES);
  const pin = (method: string, raw: string, param: string, id: string) => {
    const target = canonicalTarget(raw);
    assert.ok(target.ok);
    const match = matchRoute(index, method, target.routePath);
    assert.ok(match);
    return pinTarget(target, match, param, id);
  };

  it("pins a request to the object's ID, keeping version, other parameters and query", () => {
    assert.equal(
      pin("POST", "/v1.41/containers/web/stop?t=1", "name", "f00"),
      "/v1.41/containers/f00/stop?t=1",
    );
    assert.equal(pin("POST", "/containers/a%2Fb/kill", "name", "f00"), "/containers/f00/kill");
    assert.equal(
      pin("DELETE", "/v1.41/containers/web/checkpoints/c%3Fp%20x", "name", "f00"),
      "/v1.41/containers/f00/checkpoints/c%3Fp%20x",
    );
    assert.equal(pin("POST", "/v1.41/exec/abc/start", "name", "def"), "/v1.41/exec/def/start");
  });

  it("path values survive Go's single unescape", () => {
    assert.equal(encodePathValue("ghcr.io/a/b:1"), "ghcr.io/a/b:1");
    assert.equal(encodePathValue("a?b#c%d é"), "a%3Fb%23c%25d%20%C3%A9");
  });

  it("not-found messages are dockerd's (20.10)", () => {
    assert.equal(notFoundMessage("container", "web", "ContainerStop"), "No such container: web");
    assert.equal(notFoundMessage("exec", "e1", "ExecStart"), "No such exec instance: e1");
    assert.equal(notFoundMessage("network", "n", "NetworkDelete"), "network n not found");
    assert.equal(notFoundMessage("volume", "v", "VolumeDelete"), "get v: no such volume");
    assert.equal(notFoundMessage("service", "s", "ServiceInspect"), "service s not found");
    assert.equal(notFoundMessage("task", "t", "TaskInspect"), "task t not found");
    assert.equal(notFoundMessage("image", "nope", "ImageDelete"), "No such image: nope:latest");
    assert.equal(
      notFoundMessage("image", "reg:5000/nope", "ImageHistory"),
      "No such image: reg:5000/nope:latest",
    );
    assert.equal(
      notFoundMessage("image", "nope:1", "ImageInspect"),
      "no such image: nope:1: No such image: nope:1",
    );
    assert.equal(notFoundMessage("image", "nope", "ImageGetAll"), "No such image: nope");
  });
});

describe("policy file: visibility and redact", () => {
  const file = (profile: string) =>
    `version: 1\nprofiles:\n  p:\n    rules:\n      - allow: ContainerList\n${profile}default_profile: p\n`;
  const problems = (text: string) => {
    try {
      parsePolicyText("policy.yaml", text, ROUTES);
      return "";
    } catch (error) {
      assert.ok(error instanceof PolicyFileError, String(error));
      return error.message;
    }
  };

  it("a valid view is attached to the profile", () => {
    const loaded = parsePolicyText(
      "policy.yaml",
      file(
        '    visibility:\n      labels: { com.example.team: a, tier: null }\n      names: ["team-a-*"]\n    redact: [container.env, secret.data]\n',
      ),
      ROUTES,
    );
    const profile = filePolicy(loaded, ROUTES, {}).clientNamed("anonymous")?.profile;
    assert.deepEqual(profile?.view?.visibility, {
      labels: { "com.example.team": "a", tier: null },
      names: ["team-a-*"],
    });
    assert.deepEqual(profile?.view?.redact, ["container.env", "secret.data"]);
    const plain = filePolicy(parsePolicyText("policy.yaml", file(""), ROUTES), ROUTES, {});
    assert.equal(plain.clientNamed("anonymous")?.profile.view, undefined);
  });

  it("reports mistakes with their position", () => {
    assert.match(
      problems(file("    visibility: {}\n")),
      /^policy\.yaml:6:17: profiles\.p\.visibility: give labels, names or both/,
    );
    assert.match(
      problems(file("    visibility:\n      labels: {}\n")),
      /policy\.yaml:7:15: .*give at least one label/,
    );
    assert.match(
      problems(file("    visibility:\n      label: { a: b }\n")),
      /policy\.yaml:7:7: unknown key "label" in profiles\.p\.visibility; accepted: labels, names \(did you mean "labels"\?\)/,
    );
    assert.match(problems(file("    redact: [container.envs]\n")), /policy\.yaml:6:14: .*container\.env/);
    assert.match(
      problems(file("    visibility:\n      labels: { a: 1 }\n")),
      /policy\.yaml:7:.*expected string/,
    );
    assert.match(problems(file("    visibility:\n      names: []\n")), /policy\.yaml:7:/);
    assert.match(
      problems(file("    visiblity: {}\n")),
      /accepted: mode, rules, body, mutate, visibility, redact.*did you mean "visibility"/,
    );
  });
});
