import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PolicyFileError, parsePolicyText } from "../../src/config/policy-file.js";
import { compileClientMatch, presentedToken } from "../../src/policy/clients.js";
import { goBoolValue, goFormValue, normalizeImageName } from "../../src/policy/conditions.js";
import { filePolicy } from "../../src/policy/file-policy.js";
import { resolveSelector } from "../../src/policy/selectors.js";
import { createGate } from "../../src/proxy/gate.js";
import { buildRouteIndex } from "../../src/routing/match.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";

const ops = (selector: string) => {
  const r = resolveSelector(selector, ROUTES);
  return r.ok ? [...r.operations].sort() : r.error;
};

describe("selectors resolve against the route table", () => {
  it("names one operation, or suggests the closest", () => {
    assert.deepEqual(ops("ContainerList"), ["ContainerList"]);
    assert.match(String(ops("ContainerLsit")), /did you mean "ContainerList"/);
  });

  it("containers:read leaves the exfiltrate class out", () => {
    const read = ops("containers:read") as string[];
    assert.ok(read.includes("ContainerList") && read.includes("ContainerInspect"));
    for (const op of [
      "ContainerLogs",
      "ContainerArchive",
      "ContainerExport",
      "ContainerAttachWebsocket",
      "ContainerArchiveInfo",
    ]) {
      assert.ok(!read.includes(op), op);
    }
  });

  it("containers:write includes attach/ws, exec create and delete", () => {
    const write = ops("containers:write") as string[];
    for (const op of ["ContainerAttachWebsocket", "ContainerExec", "ContainerDelete", "ContainerCreate"])
      assert.ok(write.includes(op), op);
  });

  it("path patterns match route templates, not raw paths", () => {
    assert.deepEqual(ops("GET /containers/{id}/logs"), ["ContainerLogs"]);
    assert.deepEqual(ops("* /containers/{id}/archive"), [
      "ContainerArchive",
      "ContainerArchiveInfo",
      "PutContainerArchive",
    ]);
    assert.ok((ops("GET /images/**") as string[]).includes("ImageInspect"));
    assert.match(String(ops("GET /containers/{id}/nope")), /matches no Docker API route/);
    assert.match(String(ops("FETCH /x")), /unknown method/);
  });

  it("risk classes cover the sensitive reads", () => {
    const ex = ops("exfiltrate") as string[];
    for (const op of ["SwarmInspect", "SwarmUnlockkey", "ImageGet", "DebugVars", "ServiceLogs"])
      assert.ok(ex.includes(op), op);
    assert.deepEqual(ops("hijack"), [
      "ContainerAttach",
      "ContainerAttachWebsocket",
      "ExecStart",
      "Grpc",
      "Session",
    ]);
  });
});

describe("conditions read the request as dockerd does", () => {
  it("FormValue takes the first value and drops pairs with ;", () => {
    assert.equal(goFormValue("follow=1&follow=0", "follow"), "1");
    assert.equal(goFormValue("follow=0;follow=1&x=1", "follow"), undefined);
    assert.equal(goFormValue("a=%zz&a=2", "a"), "2");
    assert.equal(goFormValue("name=a+b", "name"), "a b");
  });

  it("BoolValue treats only empty, 0, no, false and none as false", () => {
    for (const v of ["1", "yes", "True", "anything"]) assert.equal(goBoolValue(v), true, v);
    for (const v of [undefined, "", "0", "no", "FALSE", " none "])
      assert.equal(goBoolValue(v), false, String(v));
  });

  it("normalizes image references like Docker", () => {
    assert.equal(normalizeImageName("nginx"), "docker.io/library/nginx");
    assert.equal(normalizeImageName("nginx:1.25"), "docker.io/library/nginx");
    assert.equal(normalizeImageName("user/app@sha256:abc"), "docker.io/user/app");
    assert.equal(normalizeImageName("registry:5000/app:tag"), "registry:5000/app");
    assert.equal(normalizeImageName("ghcr.io/org/app"), "ghcr.io/org/app");
  });
});

describe("clients", () => {
  it("takes the token from Bearer or the Basic password", () => {
    assert.equal(presentedToken("Bearer abc"), "abc");
    assert.equal(presentedToken(`Basic ${Buffer.from("user:abc").toString("base64")}`), "abc");
    assert.equal(presentedToken("Token abc"), undefined);
  });

  it("matches CIDRs on IPv4-mapped addresses and needs every condition", () => {
    const m = compileClientMatch({ source: ["10.0.0.0/8"], listener: "main" });
    assert.equal(m({ listener: "main", remoteAddress: "::ffff:10.1.2.3", authorization: undefined }), true);
    assert.equal(m({ listener: "other", remoteAddress: "10.1.2.3", authorization: undefined }), false);
    assert.equal(m({ listener: "main", remoteAddress: "192.168.1.1", authorization: undefined }), false);
  });
});

const POLICY = `version: 1
profiles:
  reader:
    rules:
      - allow: containers:read
  writer:
    mode: audit
    rules:
      - deny: ContainerDelete
      - allow: containers:*
clients:
  - name: w
    profile: writer
    match: { token: { env: W_TOKEN } }
default_profile: reader
`;

describe("a policy file end to end, offline", () => {
  const policy = filePolicy(parsePolicyText("p.yaml", POLICY, ROUTES), ROUTES, { W_TOKEN: "s3cret" });
  const gate = createGate(buildRouteIndex(ROUTES), { current: policy });
  const anon = { listener: "default", remoteAddress: "127.0.0.1", authorization: undefined };
  const writer = { ...anon, authorization: "Bearer s3cret" };

  it("gives unmatched clients the default profile", () => {
    const r = gate.check("GET", "/v1.41/containers/json", anon);
    assert.equal(r.verdict, "allow");
    assert.equal(r.client, "anonymous");
    assert.equal(r.profile, "reader");
    assert.equal(r.policyVersion.length, 12);
    assert.equal(gate.check("POST", "/v1.41/containers/create", anon).verdict, "deny");
  });

  it("recognises the token and forwards in audit mode what its rules deny", () => {
    const r = gate.check("DELETE", "/v1.41/containers/x", writer);
    assert.equal(r.verdict, "allow");
    assert.equal(r.client, "w");
    if (r.verdict === "allow") {
      assert.equal(r.decision.audited, true);
      assert.equal(r.decision.rule, "deny: ContainerDelete");
      assert.deepEqual(r.decision.source, { file: "p.yaml", line: 9, column: 9 });
    }
    assert.equal(
      gate.check("DELETE", "/v1.41/containers/x", { ...anon, authorization: "Bearer wrong" }).profile,
      "reader",
    );
  });

  it("refuses a startup where a token variable is missing", () => {
    assert.throws(
      () => filePolicy(parsePolicyText("p.yaml", POLICY, ROUTES), ROUTES, {}),
      /W_TOKEN is not set/,
    );
  });
});

describe("policy file validation", () => {
  const problems = (text: string) => {
    try {
      parsePolicyText("p.yaml", text, ROUTES);
      return [];
    } catch (e) {
      assert.ok(e instanceof PolicyFileError);
      return (e as PolicyFileError).message.split("\n");
    }
  };

  it("points at YAML syntax errors", () => {
    assert.match(problems("version: 1\nprofiles: [\n")[0] as string, /^p\.yaml:\d+:\d+: YAML: /);
  });

  it("reports unknown keys with what is accepted", () => {
    assert.deepEqual(problems("version: 1\nprofiles: {}\nclient: []\n"), [
      'p.yaml:3:1: unknown key "client" in the file; accepted: version, listeners, profiles, clients, default_profile (did you mean "clients"?)',
    ]);
  });

  it("reports every unknown reference with its position", () => {
    const found = problems(
      "version: 1\nprofiles:\n  a:\n    rules:\n      - allow: [ContainerList, containers:reed]\nclients:\n  - name: c\n    profile: b\n    match: { listener: x }\ndefault_profile: zz\n",
    );
    assert.equal(found.length, 4, found.join("\n"));
    assert.match(found[0] as string, /^p\.yaml:5:32: unknown access "reed"/);
    assert.match(found.join("\n"), /p\.yaml:8:14: clients\.0\.profile: no profile named "b"/);
    assert.match(found.join("\n"), /no listener named "x"/);
    assert.match(found.join("\n"), /p\.yaml:10:18: default_profile: no profile named "zz"/);
  });

  it("rejects duplicate keys instead of letting the last one win silently", () => {
    assert.match(
      problems("version: 1\nprofiles: {}\nprofiles: {}\n")[0] as string,
      /YAML: Map keys must be unique/,
    );
  });

  it("rejects a client with no way to recognise it", () => {
    assert.match(
      problems("version: 1\nprofiles: {a: {}}\nclients:\n  - {name: c, profile: a, match: {}}\n").join("\n"),
      /has no match conditions/,
    );
  });
});
