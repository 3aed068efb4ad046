import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileBodyInspector, isRootUser, SECURE_BODY_DEFAULTS } from "../../src/policy/body-rules.js";
import { field, foldKey, JsonRefusal, parseGoJson, path, serializeJson } from "../../src/policy/go-json.js";
import type { DaemonLookup, RoutedRequest } from "../../src/policy/policy.js";
import { buildRouteIndex, matchRoute } from "../../src/routing/match.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";

const index = buildRouteIndex(ROUTES);
const request = (method: string, routePath: string): RoutedRequest => {
  const match = matchRoute(index, method, routePath);
  if (match === null) throw new Error(routePath);
  return { method, rawTarget: `/v1.41${routePath}`, match };
};
const noNetworks: DaemonLookup = {
  networkDriver: async (ref) => (ref === "0123hostid" ? "host" : undefined),
};
const inspector = compileBodyInspector(
  "p",
  "enforce",
  { ...SECURE_BODY_DEFAULTS, bind_sources: ["/srv/**"], capabilities: ["NET_BIND_SERVICE"] },
  undefined,
);
const verdict = async (method: string, p: string, body: string) =>
  inspector.check(request(method, p), Buffer.from(body), noNetworks);

describe("go-json reads JSON as Go does, or refuses", () => {
  it("folds keys like Go: ASCII case, the long s and the Kelvin sign", () => {
    assert.equal(foldKey("Bindſ"), "binds");
    assert.equal(foldKey("\u212aey"), "key");
    assert.equal(foldKey("İd"), "İd");
  });

  it("finds struct fields by exact name first, then folded", () => {
    const v = parseGoJson(Buffer.from('{"hostconfig":{"PRIVILEGED":true}}'));
    assert.equal(path(v, "HostConfig", "Privileged"), true);
    assert.equal(field(v, "Missing"), undefined);
  });

  it("refuses duplicates, fold-duplicates, invalid UTF-8, trailing data and deep nesting", () => {
    for (const bad of [
      '{"a":1,"a":2}',
      '{"Binds":[],"bindſ":[]}',
      '{"a":1} {"b":2}',
      `${"[".repeat(70)}${"]".repeat(70)}`,
      '{"a":"\u0001"}',
      '{"a":01}',
    ]) {
      assert.throws(() => parseGoJson(Buffer.from(bad)), JsonRefusal, bad);
    }
    assert.throws(() => parseGoJson(Buffer.from([0x22, 0xff, 0x22])), /not valid UTF-8/);
  });

  it("writes back exactly what it read (numbers keep their text)", () => {
    const text = '{"A":9007199254740993,"B":[1.5e3,-0,true,null],"C":{"d":"\\u00e9\\n"}}';
    assert.equal(
      serializeJson(parseGoJson(Buffer.from(text))),
      '{"A":9007199254740993,"B":[1.5e3,-0,true,null],"C":{"d":"é\\n"}}',
    );
  });
});

describe("body rules", () => {
  it("treats 0, 00, 0:0, root, root:x and no user as root", () => {
    for (const u of [undefined, "", "0", "00", "0:0", "root", "root:wheel"])
      assert.equal(isRootUser(u), true, String(u));
    for (const u of ["1000", "1000:0", "nobody", "app:root"]) assert.equal(isRootUser(u), false, u);
  });

  it("allows an ordinary container and returns the original bytes", async () => {
    const body = '{"Image":"busybox","Cmd":["true"],"HostConfig":{"Binds":["/srv/data:/data","named:/x"]}}';
    const v = await verdict("POST", "/containers/create", body);
    assert.deepEqual(v, { ok: true, body: Buffer.from(body), mutated: false });
  });

  it("allows listed capabilities with or without CAP_, and nothing else", async () => {
    assert.equal(
      (await verdict("POST", "/containers/create", '{"HostConfig":{"CapAdd":["CAP_NET_BIND_SERVICE"]}}')).ok,
      true,
    );
    const v = await verdict("POST", "/containers/create", '{"HostConfig":{"CapAdd":["ALL"]}}');
    assert.equal(v.ok, false);
  });

  it("normalizes bind sources before matching", async () => {
    const v = await verdict("POST", "/containers/create", '{"HostConfig":{"Binds":["/srv/../etc:/x"]}}');
    assert.equal(v.ok, false);
    if (!v.ok)
      assert.match(
        v.message,
        /body\.bind_sources: HostConfig\.Binds\[0\] mounts host path "\/srv\/\.\.\/etc"/,
      );
  });

  it("resolves networks by ID with the daemon", async () => {
    const v = await verdict("POST", "/containers/create", '{"HostConfig":{"NetworkMode":"0123hostid"}}');
    assert.equal(v.ok, false);
    if (!v.ok) assert.match(v.message, /is the host network/);
  });

  it("checks service specs, plugin privileges and volumes", async () => {
    const svc = await verdict(
      "POST",
      "/services/create",
      '{"TaskTemplate":{"ContainerSpec":{"Image":"x","Privileges":{"Seccomp":{"Mode":"unconfined"}}}}}',
    );
    assert.equal(svc.ok, false);
    const plugin = await verdict("POST", "/plugins/pull", '[{"Name":"network","Value":["host"]}]');
    assert.equal(plugin.ok, false);
    const vol = await verdict(
      "POST",
      "/volumes/create",
      '{"Name":"v","DriverOpts":{"type":"none","o":"bind","device":"/srv/ok"}}',
    );
    assert.equal(vol.ok, true);
  });

  it("forwards in audit mode and says what it would have refused", async () => {
    const audit = compileBodyInspector("p", "audit", SECURE_BODY_DEFAULTS, undefined);
    const v = await audit.check(
      request("POST", "/containers/create"),
      Buffer.from('{"HostConfig":{"Privileged":true}}'),
      noNetworks,
    );
    assert.equal(v.ok, true);
    if (v.ok) assert.equal(v.audit?.rule, "body.privileged");
  });

  it("stamps labels over the client's own, keeping everything else", async () => {
    const stamping = compileBodyInspector("p", "enforce", SECURE_BODY_DEFAULTS, { labels: { owner: "ci" } });
    const v = await stamping.check(
      request("POST", "/containers/create"),
      Buffer.from('{"Image":"x","Labels":{"owner":"root","a":"b"}}'),
      noNetworks,
    );
    assert.ok(v.ok && v.mutated);
    if (v.ok) assert.equal(v.body.toString(), '{"Image":"x","Labels":{"owner":"ci","a":"b"}}');
  });
});
