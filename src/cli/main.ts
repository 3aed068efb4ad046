#!/usr/bin/env node
/** The `portcullis` command: serve (default), healthcheck, operations. */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadConfig } from "../config/env.js";
import { ConfigError } from "../config/errors.js";
import { toggleTableMarkdown } from "../policy/toggle-table.js";
import { ROUTES } from "../routing/route-table.generated.js";
import { healthcheck } from "./healthcheck.js";
import { operationsTable } from "./operations.js";
import { serveUntilSignalled } from "./serve.js";

const HELP = `portcullis - a default-deny policy gate for the Docker Engine API

Usage:
  portcullis [serve] [--listen URL]... [--upstream URL] [--log-level LEVEL]
  portcullis healthcheck [--listen URL]
  portcullis operations [--json]
  portcullis toggles
  portcullis --help | --version

serve (default)
  Listens for Docker API clients and forwards what the policy allows to the daemon.
  --listen URL      tcp://HOST:PORT or unix:///PATH[?mode=0660&uid=N&gid=N]; repeatable.
                    Env: PORTCULLIS_LISTEN (comma-separated). Default: tcp://[::]:2375,
                    or tcp://0.0.0.0:2375 with DISABLE_IPV6=1.
  --upstream URL    The daemon: unix:///PATH or tcp://HOST:PORT.
                    Env: DOCKER_HOST (with DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) or SOCKET_PATH.
                    Default: unix:///var/run/docker.sock.
  --log-level L     debug, info, notice, warning, err, crit (or pino names). Env: LOG_LEVEL. Default: info.

  What is allowed comes from the Tecnativa-compatible toggles (1/0, true/false, yes/no, on/off):
    read access per API section: AUTH BUILD COMMIT CONFIGS CONTAINERS DISTRIBUTION EVENTS(1)
      EXEC GRPC IMAGES INFO NETWORKS NODES PING(1) PLUGINS SECRETS SERVICES SESSION SWARM
      SYSTEM TASKS VERSION(1) VOLUMES          (1) = on by default
    POST=1          writes (POST, PUT, DELETE) on the enabled sections
    ALLOW_START ALLOW_STOP ALLOW_RESTARTS ALLOW_PAUSE ALLOW_UNPAUSE
                    those container actions alone, without POST or CONTAINERS
  Everything else is denied with a Docker-format 403 naming the operation and the toggle.
  Limits: PORTCULLIS_MAX_HEADER_BYTES, PORTCULLIS_HEADERS_TIMEOUT_MS, PORTCULLIS_KEEPALIVE_TIMEOUT_MS,
  PORTCULLIS_HIJACK_BODY_MAX_BYTES, PORTCULLIS_SHUTDOWN_GRACE_MS (see docs/configuration.md).

healthcheck
  GET /_ping through the proxy's first listener; exit 0 if the daemon answers 200, else 1.

operations
  Lists every Docker API operation portcullis knows: name, method, path, section, kind.

toggles
  Prints, as a Markdown table, which operations each environment toggle allows.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      listen: { type: "string", multiple: true },
      upstream: { type: "string" },
      "log-level": { type: "string" },
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
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = positionals[0] ?? "serve";
  const cli = {
    ...(values.listen ? { listen: values.listen } : {}),
    ...(values.upstream !== undefined ? { upstream: values.upstream } : {}),
    ...(values["log-level"] !== undefined ? { logLevel: values["log-level"] } : {}),
  };
  switch (command) {
    case "serve":
      await serveUntilSignalled(loadConfig(process.env, cli));
      return -1;
    case "healthcheck": {
      const config = loadConfig(process.env, cli);
      const listener = config.listeners[0];
      if (listener === undefined) return 1;
      const result = await healthcheck(listener);
      (result.ok ? process.stdout : process.stderr).write(
        `${result.ok ? "healthy" : "unhealthy"}: ${result.detail}\n`,
      );
      return result.ok ? 0 : 1;
    }
    case "operations":
      process.stdout.write(values.json ? `${JSON.stringify(ROUTES, null, 2)}\n` : operationsTable(ROUTES));
      return 0;
    case "toggles":
      process.stdout.write(toggleTableMarkdown(ROUTES));
      return 0;
    default:
      process.stderr.write(
        `portcullis: unknown command ${JSON.stringify(command)}; expected serve, healthcheck, operations or toggles (see --help)\n`,
      );
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`portcullis: ${(error as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`portcullis: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
