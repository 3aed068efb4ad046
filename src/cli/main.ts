#!/usr/bin/env node
/** The `portcullis` command: serve (default), healthcheck, validate, check, test, learn, operations, toggles. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { type CliOverrides, loadConfig, readPolicyFile, readToggles } from "../config/env.js";
import { ConfigError } from "../config/errors.js";
import { PolicyFileError } from "../config/policy-file.js";
import { envPolicy } from "../policy/env-policy.js";
import { filePolicy } from "../policy/file-policy.js";
import type { Policy } from "../policy/policy.js";
import { toggleTableMarkdown } from "../policy/toggle-table.js";
import { ROUTES } from "../routing/route-table.generated.js";
import { healthcheck } from "./healthcheck.js";
import { serveUntilSignalled } from "./serve.js";

const HELP = `portcullis - a default-deny policy gate for the Docker Engine API

Usage:
  portcullis [serve] [--config FILE] [--listen URL]... [--upstream URL] [--log-level LEVEL]
                     [--audit-log FILE] [--admin-listen URL] [--learn-output FILE]
  portcullis healthcheck [--listen URL] [--admin-listen URL]
  portcullis validate FILE
  portcullis check [--config FILE] [--client NAME] [--body FILE] METHOD TARGET
  portcullis test CASES.yaml [--config FILE]
  portcullis learn --from AUDIT.log [--config FILE] [--all-modes]
  portcullis operations [--json]
  portcullis toggles
  portcullis --help | --version

serve (default)
  Listens for Docker API clients and forwards what the policy allows to the daemon.
  --config FILE     A YAML policy file (env: PORTCULLIS_CONFIG): clients, profiles, rules by
                    operation name (see docs/policy.md). It replaces the toggles below.
                    SIGHUP or saving the file reloads it; an invalid file keeps the old policy.
  --listen URL      tcp://HOST:PORT or unix:///PATH[?mode=0660&uid=N&gid=N]; repeatable.
                    Env: PORTCULLIS_LISTEN (comma-separated). Default: tcp://[::]:2375,
                    or tcp://0.0.0.0:2375 with DISABLE_IPV6=1.
  --upstream URL    The daemon: unix:///PATH or tcp://HOST:PORT.
                    Env: DOCKER_HOST (with DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) or SOCKET_PATH.
                    Default: unix:///var/run/docker.sock.
  --log-level L     debug, info, notice, warning, err, crit (or pino names). Env: LOG_LEVEL. Default: info.
  --audit-log FILE  Also write every decision (allowed ones too) as JSON lines to FILE
                    (env: PORTCULLIS_AUDIT_LOG); SIGUSR1 reopens it after log rotation.
  --admin-listen URL  Admin listener, separate from the API ones (env: PORTCULLIS_ADMIN_LISTEN),
                    e.g. tcp://127.0.0.1:9375: /metrics (Prometheus), /health, /ready, live view at /.
  --learn-output FILE  Profiles with mode: learn record what each client uses; the least-privilege
                    policy for them is written to FILE (env: PORTCULLIS_LEARN_OUTPUT).

  Without a policy file, what is allowed comes from the Tecnativa-compatible toggles
  (1/0, true/false, yes/no, on/off):
    read access per API section: AUTH BUILD COMMIT CONFIGS CONTAINERS DISTRIBUTION EVENTS(1)
      EXEC GRPC IMAGES INFO NETWORKS NODES PING(1) PLUGINS SECRETS SERVICES SESSION SWARM
      SYSTEM TASKS VERSION(1) VOLUMES          (1) = on by default
    POST=1          writes (POST, PUT, DELETE) on the enabled sections
    ALLOW_START ALLOW_STOP ALLOW_RESTARTS ALLOW_PAUSE ALLOW_UNPAUSE
                    those container actions alone, without POST or CONTAINERS
  Everything else is denied with a Docker-format 403 naming the operation and what would allow it.
  Limits: PORTCULLIS_MAX_HEADER_BYTES, PORTCULLIS_HEADERS_TIMEOUT_MS, PORTCULLIS_KEEPALIVE_TIMEOUT_MS,
  PORTCULLIS_HIJACK_BODY_MAX_BYTES, PORTCULLIS_SHUTDOWN_GRACE_MS (see docs/configuration.md).

healthcheck
  GET /ready on the admin listener when one is configured, else GET /_ping through the proxy's
  first listener; exit 0 if the daemon answers 200, else 1.

validate FILE
  Loads a policy file; prints every problem as FILE:LINE:COLUMN: message. Exit 0 when valid.

check [--config FILE] [--client NAME] [--body FILE] METHOD TARGET
  The decision for one request, offline: operation, risk classes, client and profile, the rule
  that decided (with its line) and the smallest rule that would change it. With --body, the
  profile's body rules are applied to that request body too. Without --config, the toggles in the
  environment decide. Exit 0 when allowed, 1 when not.

test CASES.yaml [--config FILE]
  Runs a table of requests and expected decisions (allow, deny, refuse, not-found, audit); prints
  one line per case and "N passed, M failed". Exit 1 on any failure. For CI.

learn --from AUDIT.log [--config FILE] [--all-modes]
  Reads audit records (JSON lines, e.g. the PORTCULLIS_AUDIT_LOG file; "-" for stdin) and prints
  the smallest policy allowing exactly what each client did: one profile per client, risky
  operations marked. --config keeps each client's match: from that file. Only records of profiles
  in learn mode are used, unless --all-modes.

operations
  Lists every Docker API operation portcullis knows: name, method, path, section, kind, risk classes.

toggles
  Prints, as a Markdown table, which operations each environment toggle allows.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** The policy `check` and `test` evaluate: the file's, or the environment toggles'. No listener is opened. */
function offlinePolicy(cli: CliOverrides): Policy {
  const file = readPolicyFile(process.env, cli);
  return file ? filePolicy(file, ROUTES, process.env) : envPolicy(ROUTES, readToggles(process.env));
}

const out = (s: string) => process.stdout.write(s.endsWith("\n") ? s : `${s}\n`);

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      client: { type: "string" },
      body: { type: "string" },
      listen: { type: "string", multiple: true },
      upstream: { type: "string" },
      "log-level": { type: "string" },
      "audit-log": { type: "string" },
      "admin-listen": { type: "string" },
      "learn-output": { type: "string" },
      from: { type: "string" },
      "all-modes": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    out(version());
    return 0;
  }
  const [command = "serve", ...args] = positionals;
  const cli = {
    ...(values.config !== undefined ? { config: values.config } : {}),
    ...(values.listen ? { listen: values.listen } : {}),
    ...(values.upstream !== undefined ? { upstream: values.upstream } : {}),
    ...(values["log-level"] !== undefined ? { logLevel: values["log-level"] } : {}),
    ...(values["audit-log"] !== undefined ? { auditLog: values["audit-log"] } : {}),
    ...(values["admin-listen"] !== undefined ? { adminListen: values["admin-listen"] } : {}),
    ...(values["learn-output"] !== undefined ? { learnOutput: values["learn-output"] } : {}),
  };
  switch (command) {
    case "serve":
      await serveUntilSignalled(loadConfig(process.env, cli));
      return -1;
    case "healthcheck": {
      const config = loadConfig(process.env, cli);
      const listener = config.listeners[0];
      if (listener === undefined) return 1;
      const result = config.adminListener
        ? await healthcheck(config.adminListener, 3000, "/ready")
        : await healthcheck(listener);
      (result.ok ? process.stdout : process.stderr).write(
        `${result.ok ? "healthy" : "unhealthy"}: ${result.detail}\n`,
      );
      return result.ok ? 0 : 1;
    }
    case "validate": {
      const file = args[0] ?? values.config;
      if (file === undefined)
        throw new ConfigError("validate", "", "a policy file path: portcullis validate FILE");
      const loaded = readPolicyFile({}, { config: file });
      const data = loaded?.data;
      const rules = [...(loaded?.rules.values() ?? [])].reduce((n, r) => n + r.length, 0);
      out(
        `${file}: valid (version ${loaded?.version}): ${Object.keys(data?.profiles ?? {}).length} profiles, ${data?.clients.length ?? 0} clients, ${rules} rules`,
      );
      return 0;
    }
    case "check": {
      const [method, target] = args;
      if (method === undefined || target === undefined) {
        throw new ConfigError(
          "check",
          args.join(" "),
          "METHOD TARGET, e.g. portcullis check GET /v1.41/containers/json",
        );
      }
      // The offline commands load on demand: the proxy itself never loads them (or their yaml).
      const { explain, explainBody } = await import("./check.js");
      const plain = explain(offlinePolicy(cli), values.client, method, target);
      const e = values.body === undefined ? plain : await explainBody(plain, readFileSync(values.body));
      out(e.lines.join("\n"));
      return e.decision === "allow" ? 0 : 1;
    }
    case "test": {
      const file = args[0];
      if (file === undefined) throw new ConfigError("test", "", "a cases file: portcullis test CASES.yaml");
      const { readCaseFile, runCases } = await import("./check.js");
      const cases = readCaseFile(file);
      const configPath = values.config ?? (cases.config ? resolve(cases.baseDir, cases.config) : undefined);
      const policy = offlinePolicy({ ...cli, ...(configPath ? { config: configPath } : {}) });
      const { passed, failed, report } = runCases(policy, cases.cases);
      out([...report, `${passed} passed, ${failed} failed`].join("\n"));
      return failed === 0 ? 0 : 1;
    }
    case "learn": {
      const { learnCommand } = await import("./learn.js");
      return learnCommand({
        from: values.from ?? args[0],
        config: values.config,
        allModes: values["all-modes"] === true,
        out,
      });
    }
    case "operations": {
      const { operationsTable } = await import("./operations.js");
      out(values.json ? JSON.stringify(ROUTES, null, 2) : operationsTable(ROUTES));
      return 0;
    }
    case "toggles":
      process.stdout.write(toggleTableMarkdown(ROUTES));
      return 0;
    default:
      process.stderr.write(
        `portcullis: unknown command ${JSON.stringify(command)}; expected serve, healthcheck, validate, check, test, learn, operations or toggles (see --help)\n`,
      );
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    const known =
      error instanceof ConfigError ||
      error instanceof PolicyFileError ||
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(
      known
        ? `portcullis: ${(error as Error).message}\n`
        : `portcullis: ${(error as Error).stack ?? String(error)}\n`,
    );
    process.exitCode = known ? 2 : 1;
  },
);
