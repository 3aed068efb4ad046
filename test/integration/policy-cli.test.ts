/**
 * The policy file through the real `portcullis` command, no daemon needed: `validate` (every
 * problem as FILE:LINE:COL with what was found, what is accepted, "did you mean"), `check`, `test`,
 * token sources (file, env), and what a missing token does at start-up.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLI, type CliProxy, logRecords, startCli } from "../helpers/proxy.js";

const dir = mkdtempSync(join(tmpdir(), "portcullis-policy-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
    timeout: 15_000,
    cwd: dir,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function positionOf(text: string, needle: string): string {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, `${needle} is in the file`);
  const before = text.slice(0, at).split("\n");
  return `${before.length}:${(before.at(-1) as string).length + 1}`;
}

/** validate's problems: one per line, `FILE:LINE:COL: message` (the first after "portcullis: "). */
function problems(stderr: string): string[] {
  return stderr
    .trim()
    .split("\n")
    .map((l) => l.replace(/^portcullis: /, ""));
}

const GOOD = `version: 1
listeners:
  - name: main
    address: tcp://127.0.0.1:0
profiles:
  readonly:
    rules:
      - deny: ContainerInspect
        when:
          query: { size: true }
      - allow: [SystemPing, SystemVersion, containers:read]
  ops:
    mode: audit
    rules:
      - allow: containers:*
clients:
  - { name: viewer, profile: readonly, match: { listener: main } }
  - { name: ci, profile: ops, match: { token: { env: CI_TOKEN } } }
`;
const ENV = { CI_TOKEN: "t0ken" };

describe("portcullis validate", () => {
  it("accepts a good file: exit 0 and a summary", () => {
    const path = file("good.yaml", GOOD);
    const r = cli(["validate", path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^${path}: valid \\(version [0-9a-f]{12}\\): 2 profiles, 2 clients, 3 rules\\n$`),
    );
  });

  const bad: { name: string; text: string; needle: string; message: RegExp }[] = [
    {
      name: "a misspelt operation",
      text: "version: 1\nprofiles:\n  a:\n    rules:\n      - allow: [SystemPing, ContainerLsit]\n",
      needle: "ContainerLsit",
      message:
        /^unknown operation "ContainerLsit" \(did you mean "ContainerList"\?\); see `portcullis operations`$/,
    },
    {
      name: "a misspelt key",
      text: "version: 1\nprofiles:\n  ops:\n    mood: audit\n    rules: []\n",
      needle: "mood",
      message:
        /^unknown key "mood" in profiles\.ops; accepted: mode, rules, body, mutate, visibility, redact \(did you mean "mode"\?\)$/,
    },
    {
      name: "a misspelt key under when",
      text: "version: 1\nprofiles:\n  a:\n    rules:\n      - allow: ContainerLogs\n        when: { querry: { follow: true } }\n",
      needle: "querry",
      message:
        /^unknown key "querry" in profiles\.a\.rules\.0\.when; accepted: query, registry \(did you mean "query"\?\)$/,
    },
    {
      name: "a misspelt section",
      text: "version: 1\nprofiles:\n  a:\n    rules:\n      - allow: containrs:read\n",
      needle: "containrs",
      message: /^unknown section "containrs" \(did you mean "containers"\?\); sections: containers, /,
    },
    {
      name: "a path pattern that matches no route",
      text: 'version: 1\nprofiles:\n  a:\n    rules:\n      - deny: "GET /containers/{id}/lgos"\n',
      needle: '"GET',
      message: /^"GET \/containers\/\{id\}\/lgos" matches no Docker API route; see `portcullis operations`$/,
    },
    {
      name: "a wrong mode",
      text: "version: 1\nprofiles:\n  a:\n    mode: enforcee\n",
      needle: "enforcee",
      message: /^profiles\.a\.mode: found "enforcee"; expected one of "enforce"\|"audit"/,
    },
    {
      name: "a wrong version",
      text: "version: 2\nprofiles: {}\n",
      needle: "2",
      message: /^version: found 2; expected 1$/,
    },
    {
      name: "a rule that is neither allow nor deny",
      text: "version: 1\nprofiles:\n  a:\n    rules:\n      - permit: SystemPing\n",
      needle: "permit",
      message:
        /^rule \{"permit":"SystemPing"\} in profiles\.a\.rules\.0: expected "allow: SELECTOR" or "deny: SELECTOR"/,
    },
    {
      name: "a client naming a misspelt profile",
      text: "version: 1\nprofiles:\n  ops: {}\n  readonly: {}\nclients:\n  - { name: x, profile: opps, match: { source: [127.0.0.1] } }\n",
      needle: "opps",
      message:
        /^clients\.0\.profile: no profile named "opps" \(did you mean "ops"\?\); defined: ops, readonly$/,
    },
    {
      name: "a client naming a misspelt listener",
      text: 'version: 1\nlisteners:\n  - { name: traefik, address: "unix:///tmp/x.sock" }\nprofiles:\n  a: {}\nclients:\n  - { name: x, profile: a, match: { listener: traefk } }\n',
      needle: "traefk",
      message:
        /^clients\.0\.match\.listener: no listener named "traefk" \(did you mean "traefik"\?\); defined: traefik$/,
    },
    {
      name: "a bad CIDR",
      text: "version: 1\nprofiles:\n  a: {}\nclients:\n  - { name: x, profile: a, match: { source: [10.0.0.0/33] } }\n",
      needle: "10.0.0.0/33",
      message: /^found "10\.0\.0\.0\/33"; expected an address or CIDR such as 10\.0\.1\.0\/24/,
    },
  ];
  for (const c of bad) {
    it(`rejects ${c.name}: exit 2, FILE:LINE:COL, what was found and what is accepted`, () => {
      const path = file(`bad-${c.name.replace(/\W+/g, "-")}.yaml`, c.text);
      const r = cli(["validate", path]);
      assert.equal(r.code, 2, r.stdout);
      assert.equal(r.stdout, "");
      const [first, ...rest] = problems(r.stderr);
      assert.deepEqual(rest, [], "one problem");
      const prefix = `${path}:${positionOf(c.text, c.needle)}: `;
      assert.ok(first?.startsWith(prefix), `expected ${prefix}..., got ${first}`);
      assert.match((first as string).slice(prefix.length), c.message);
    });
  }

  it("reports every problem of the references and selectors in one run", () => {
    const text = `version: 1
profiles:
  a:
    rules:
      - allow: [SystemPing, ContainerLsit]
      - allow: containrs:read
clients:
  - { name: x, profile: c, match: { listener: nope } }
default_profile: aa
`;
    const path = file("many.yaml", text);
    const r = cli(["validate", path]);
    assert.equal(r.code, 2);
    const found = problems(r.stderr);
    /** Where the value after `key` starts. */
    const valueAt = (key: string) => {
      const [line, col] = positionOf(text, key).split(":").map(Number) as [number, number];
      return `${line}:${col + key.length}`;
    };
    assert.deepEqual(
      found.map((l) => l.slice(path.length + 1).split(": ")[0]),
      [
        positionOf(text, "ContainerLsit"),
        positionOf(text, "containrs"),
        valueAt("profile: "),
        valueAt("listener: "),
        valueAt("default_profile: "),
      ],
    );
    assert.match(found[0] as string, /did you mean "ContainerList"/);
    assert.match(found[1] as string, /did you mean "containers"/);
    assert.match(found[2] as string, /no profile named "c" \(did you mean "a"\?\)/);
    assert.match(found[3] as string, /no listener named "nope"; defined: none/);
    assert.match(found[4] as string, /no profile named "aa" \(did you mean "a"\?\)/);
  });

  it("reports a YAML syntax error with its position", () => {
    const path = file("syntax.yaml", "version: 1\nprofiles:\n  a: { rules: [\n");
    const r = cli(["validate", path]);
    assert.equal(r.code, 2);
    for (const line of problems(r.stderr)) assert.match(line, new RegExp(`^${path}:\\d+:\\d+: YAML: `));
  });

  it("reports a file that cannot be read", () => {
    const r = cli(["validate", join(dir, "missing.yaml")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing\.yaml:0:0: cannot read the policy file: ENOENT/);
  });
});

describe("portcullis check", () => {
  const path = file("check.yaml", GOOD);
  const check = (...args: string[]) => cli(["check", "--config", path, ...args], ENV);
  const lines = (stdout: string) =>
    Object.fromEntries(
      stdout
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, 10), l.slice(11)]),
    );

  it("explains an allow: the rule and its line, and what would change it", () => {
    const r = check("--client", "viewer", "GET", "/v1.41/containers/json");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout), {
      "decision: ": "allow",
      "operation:": "ContainerList",
      "client:   ": "viewer (profile readonly, enforce)",
      "rule:     ": `allow: [SystemPing, SystemVersion, containers:read] at ${path}:11`,
      "to change:": 'add "- deny: ContainerList" to profile readonly before line 11',
    });
  });

  it("explains a deny by a rule with conditions", () => {
    const r = check("--client", "viewer", "GET", "/v1.41/containers/web/json?size=1");
    assert.equal(r.code, 1);
    const l = lines(r.stdout);
    assert.equal(l["decision: "], "deny (403)");
    assert.equal(l["rule:     "], `deny: ContainerInspect (when ...) at ${path}:8`);
    assert.equal(l["to change:"], 'add "- allow: ContainerInspect" to profile readonly before line 8');
    // Without size=1 the condition does not hold and the next rule allows it.
    assert.equal(check("--client", "viewer", "GET", "/v1.41/containers/web/json").code, 0);
  });

  it("explains a default deny, with the operation's risk class", () => {
    const r = check("--client", "viewer", "POST", "/v1.41/containers/create");
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stdout), {
      "decision: ": "deny (403)",
      "operation:": "ContainerCreate [write]",
      "client:   ": "viewer (profile readonly, enforce)",
      "message:  ":
        'portcullis denied ContainerCreate (POST /v1.41/containers/create): profile readonly has no rule allowing it (add "- allow: ContainerCreate")',
      "rule:     ": "default deny",
      "to change:": 'add "- allow: ContainerCreate" to profile readonly',
    });
  });

  it("says when only audit mode lets a request through", () => {
    const r = check("--client", "ci", "POST", "/v1.41/images/create?fromImage=busybox");
    assert.match(r.stdout, /^decision: {2}allow \(audit mode: the rules would deny/);
    assert.match(r.stdout, /client: {4}ci \(profile ops, audit\)/);
  });

  it("explains an unmatched client without default_profile, with a change that can be made", () => {
    const r = check("GET", "/v1.41/version");
    assert.equal(r.code, 1);
    const l = lines(r.stdout);
    assert.equal(l["client:   "], "anonymous (profile (none), enforce)");
    assert.match(l["message:  "] as string, /no client entry of the policy file matches this connection/);
    assert.doesNotMatch(l["to change:"] as string, /to profile \(none\)/);
    assert.match(l["to change:"] as string, /default_profile/);
  });

  it("refuses an unknown --client with one clear line", () => {
    const r = check("--client", "nobody", "GET", "/v1.41/version");
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      `portcullis: invalid --client="nobody": expected a client named in ${path}, or anonymous\n`,
    );
  });

  it("needs the token variables of the file, and says so in one line", () => {
    const r = cli(["check", "--config", path, "--client", "viewer", "GET", "/v1.41/version"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^portcullis: .*token variable CI_TOKEN is not set or empty\n$/);
    assert.match(r.stderr, /client "ci"/);
  });
});

describe("portcullis test", () => {
  file("cases-policy.yaml", GOOD);
  const CASES = `config: cases-policy.yaml
cases:
  - { client: viewer, request: GET /v1.41/containers/json, expect: allow, operation: ContainerList }
  - { client: viewer, request: GET /v1.41/containers/web/json?size=1, expect: deny }
  - { client: viewer, request: POST /v1.41/containers/create, expect: deny }
  - { client: ci, request: POST /v1.41/images/create?fromImage=busybox, expect: audit }
  - { client: ci, request: POST /v1.41/containers/create, expect: allow }
  - { request: GET /v1.41/version, expect: deny }
  - { client: viewer, request: GET //v1.41/containers/json, expect: refuse }
  - { client: viewer, request: GET /v1.41/containers/json/, expect: not-found }
`;

  it("passes a table that matches: exit 0 and N passed, 0 failed", () => {
    const r = cli(["test", file("cases.yaml", CASES)], ENV);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = r.stdout.trim().split("\n");
    assert.equal(out.length, 9);
    assert.ok(
      out.slice(0, 8).every((l) => l.startsWith("ok   ")),
      r.stdout,
    );
    assert.equal(out.at(-1), "8 passed, 0 failed");
  });

  it("fails a table with a wrong expectation: exit 1, the case, what was expected and what came", () => {
    const failing = CASES.replace(
      "POST /v1.41/containers/create, expect: deny }",
      "POST /v1.41/containers/create, expect: allow }",
    ).replace("expect: allow, operation: ContainerList", "expect: allow, operation: ContainerInspect");
    const r = cli(["test", file("failing.yaml", failing)], ENV);
    assert.equal(r.code, 1);
    const out = r.stdout.trim().split("\n");
    assert.equal(out.at(-1), "6 passed, 2 failed");
    assert.ok(
      out.includes(
        "FAIL viewer: GET /v1.41/containers/json (expected allow ContainerInspect, got allow ContainerList)",
      ),
      r.stdout,
    );
    assert.ok(
      out.includes("FAIL viewer: POST /v1.41/containers/create (expected allow, got deny ContainerCreate)"),
      r.stdout,
    );
  });

  it("takes --config over the cases file's config", () => {
    const other = file(
      "other.yaml",
      "version: 1\nprofiles:\n  open: { rules: [ { allow: '*:read' } ] }\ndefault_profile: open\n",
    );
    const cases = file(
      "anon.yaml",
      "config: cases-policy.yaml\ncases:\n  - { request: GET /v1.41/version, expect: allow }\n",
    );
    assert.equal(cli(["test", cases, "--config", other]).code, 0);
    assert.equal(cli(["test", cases], ENV).code, 1);
  });

  it("rejects a malformed cases file with one clear line and exit 2 (a failing case is 1)", () => {
    const path = file("broken-cases.yaml", "cases:\n  - { request: GET, expect: allow }\n");
    const r = cli(["test", path]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      `portcullis: invalid ${path}: cases[0].request="GET": expected "METHOD TARGET", e.g. "GET /v1.41/containers/json"\n`,
    );
    const typo = cli([
      "test",
      file("typo-cases.yaml", "cases:\n  - { request: GET /_ping, expect: alow }\n"),
    ]);
    assert.equal(typo.code, 2);
    assert.match(
      typo.stderr,
      /cases\[0\]\.expect="alow": expected allow, deny, refuse, not-found or audit\n$/,
    );
    const missing = cli(["test", join(dir, "no-cases.yaml")]);
    assert.equal(missing.code, 2);
    assert.match(
      missing.stderr,
      /^portcullis: invalid cases file=".*no-cases\.yaml": expected a readable YAML file \(ENOENT/,
    );
  });
});

describe("tokens at start-up (the real process, no daemon)", () => {
  const upstream = join(dir, "no-daemon.sock");
  const procs: CliProxy[] = [];
  after(() => Promise.all(procs.map((p) => p.stop())));

  const get = (port: number, auth?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get(
          {
            host: "127.0.0.1",
            port,
            path: "/v1.41/containers/json",
            headers: auth ? { authorization: auth } : {},
          },
          (res) => {
            let body = "";
            res.on("data", (c) => {
              body += c;
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          },
        )
        .on("error", reject);
    });

  const tokenPolicy = (token: string) => `version: 1
listeners:
  - name: main
    address: tcp://127.0.0.1:0
profiles:
  reader:
    rules:
      - allow: containers:read
clients:
  - { name: ci, profile: reader, match: { token: ${token} } }
`;

  it("reads a token from a file (trailing newline ignored); the right token is allowed, others denied", async () => {
    const tokenFile = file("token.txt", "from-a-file\n");
    const config = file("token-file.yaml", tokenPolicy(`{ file: ${tokenFile} }`));
    const p = await startCli(["--config", config], { SOCKET_PATH: upstream, LOG_LEVEL: "debug" });
    procs.push(p);
    const port = Number(/listening on main=tcp:\/\/127\.0\.0\.1:(\d+)/.exec(p.output())?.[1]);
    assert.ok(port > 0, p.output());
    // Allowed requests are forwarded, and the daemon is away: 502. Denied ones: 403.
    assert.equal((await get(port, "Bearer from-a-file")).status, 502);
    assert.equal((await get(port, `Basic ${Buffer.from("any:from-a-file").toString("base64")}`)).status, 502);
    assert.equal((await get(port, "Bearer from-a-file-and-more")).status, 403);
    assert.equal((await get(port, "Bearer from-a-fil")).status, 403);
    const denied = await get(port);
    assert.equal(denied.status, 403);
    assert.match(denied.body, /portcullis denied ContainerList/);

    // Rotating the token: write the file, SIGHUP; the old token stops working.
    writeFileSync(tokenFile, "rotated\n");
    p.child.kill("SIGHUP");
    const deadline = Date.now() + 5_000;
    let rotated = 0;
    while (Date.now() < deadline) {
      rotated = (await get(port, "Bearer rotated")).status;
      if (rotated === 502) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(rotated, 502, "the new token is accepted after SIGHUP");
    assert.equal((await get(port, "Bearer from-a-file")).status, 403, "the old token is refused");
    const records = logRecords(p.output()).filter((r) => r.operation === "ContainerList");
    assert.ok(records.some((r) => r.client === "ci" && r.decision === "allow"));
    assert.ok(records.some((r) => r.client === "anonymous" && r.decision === "deny"));
    assert.ok(
      !p.output().includes("from-a-file") && !p.output().includes("rotated"),
      "tokens are never logged",
    );
  });

  for (const [label, env] of [
    ["unset", {}],
    ["empty", { CI_TOKEN: "" }],
  ] as const) {
    it(`stops start-up when the token variable is ${label}, with a clear error`, async () => {
      const config = file(`token-env-${label}.yaml`, tokenPolicy("{ env: CI_TOKEN }"));
      const p = await startCli(["--config", config], { SOCKET_PATH: upstream, ...env });
      procs.push(p);
      const [code] = await p.exited;
      assert.equal(code, 1);
      assert.doesNotMatch(p.output(), /listening on/);
      const fatal = logRecords(p.output()).find((r) => r.level === "fatal");
      assert.match(
        String(fatal?.msg),
        /could not start on main=tcp:\/\/127\.0\.0\.1:0: .*token variable CI_TOKEN is not set or empty/,
      );
      assert.match(String(fatal?.msg), /client "ci"/);
    });
  }

  it("stops start-up when the token file is missing or empty, naming it", async () => {
    for (const [name, create] of [
      ["absent-token.txt", false],
      ["empty-token.txt", true],
    ] as const) {
      const tokenFile = join(dir, name);
      if (create) writeFileSync(tokenFile, "\n");
      const config = file(`token-${name}.yaml`, tokenPolicy(`{ file: ${tokenFile} }`));
      const p = await startCli(["--config", config], { SOCKET_PATH: upstream });
      procs.push(p);
      const [code] = await p.exited;
      assert.equal(code, 1);
      const fatal = logRecords(p.output()).find((r) => r.level === "fatal");
      assert.match(String(fatal?.msg), new RegExp(`token file of client "ci"="${tokenFile}"`));
      assert.match(String(fatal?.msg), create ? /it is empty/ : /ENOENT/);
    }
  });
});
