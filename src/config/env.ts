/**
 * Builds the ProxyConfig from the environment (the anchors' toggles plus PORTCULLIS_* settings) and
 * command-line overrides. Every invalid value stops start-up with its name, value and what is accepted.
 */
import { ACTION_TOGGLES, ALL_TOGGLE_NAMES, POST_TOGGLE, SECTION_TOGGLES } from "../policy/toggles.js";
import { ROUTES } from "../routing/route-table.generated.js";
import { parseListener, parseUpstream } from "./addresses.js";
import { ACCEPTED_BOOLEANS, parseBoolean } from "./booleans.js";
import { DEFAULT_LIMITS, type Limits, type ListenerSpec, type ProxyConfig } from "./config.js";
import { ConfigError } from "./errors.js";
import { type LoadedPolicyFile, loadPolicyFile } from "./policy-file.js";

export type Env = Readonly<Record<string, string | undefined>>;

/** Settings given on the command line; each wins over its environment variable. */
export interface CliOverrides {
  readonly config?: string;
  readonly listen?: readonly string[];
  readonly upstream?: string;
  readonly logLevel?: string;
  readonly auditLog?: string;
  readonly adminListen?: string;
  readonly learnOutput?: string;
}

export const DEFAULT_SOCKET_PATH = "/var/run/docker.sock";
export const DEFAULT_PORT = 2375;

/** HAProxy's syslog levels (the anchors' LOG_LEVEL) and pino's own names, mapped to pino. */
const LOG_LEVELS: Readonly<Record<string, string>> = {
  debug: "debug",
  info: "info",
  notice: "info",
  warning: "warn",
  err: "error",
  crit: "fatal",
  alert: "fatal",
  emerg: "fatal",
  trace: "trace",
  warn: "warn",
  error: "error",
  fatal: "fatal",
  silent: "silent",
};

export function readBoolean(env: Env, name: string): boolean | undefined {
  const parsed = parseBoolean(env[name]);
  if (!parsed.ok) throw new ConfigError(name, env[name] ?? "", ACCEPTED_BOOLEANS);
  return parsed.value;
}

export function readToggles(env: Env): Record<string, boolean> {
  const toggles: Record<string, boolean> = {};
  for (const t of SECTION_TOGGLES) toggles[t.name] = readBoolean(env, t.name) ?? t.defaultOn;
  toggles[POST_TOGGLE] = readBoolean(env, POST_TOGGLE) ?? false;
  for (const a of ACTION_TOGGLES) toggles[a.name] = readBoolean(env, a.name) ?? false;
  return toggles;
}

function readInteger(env: Env, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  if (!/^[0-9]+$/.test(raw.trim()) || Number.parseInt(raw, 10) < min) {
    throw new ConfigError(name, raw, `an integer >= ${min}`);
  }
  return Number.parseInt(raw, 10);
}

function readLimits(env: Env): Limits {
  return {
    maxHeaderBytes: readInteger(env, "PORTCULLIS_MAX_HEADER_BYTES", DEFAULT_LIMITS.maxHeaderBytes, 1024),
    maxHeaderCount: readInteger(env, "PORTCULLIS_MAX_HEADER_COUNT", DEFAULT_LIMITS.maxHeaderCount, 8),
    maxConnections: readInteger(env, "PORTCULLIS_MAX_CONNECTIONS", DEFAULT_LIMITS.maxConnections, 1),
    headersTimeoutMs: readInteger(
      env,
      "PORTCULLIS_HEADERS_TIMEOUT_MS",
      DEFAULT_LIMITS.headersTimeoutMs,
      1000,
    ),
    keepAliveTimeoutMs: readInteger(
      env,
      "PORTCULLIS_KEEPALIVE_TIMEOUT_MS",
      DEFAULT_LIMITS.keepAliveTimeoutMs,
      1000,
    ),
    hijackBodyMaxBytes: readInteger(
      env,
      "PORTCULLIS_HIJACK_BODY_MAX_BYTES",
      DEFAULT_LIMITS.hijackBodyMaxBytes,
      1024,
    ),
    bodyMaxBytes: readInteger(env, "PORTCULLIS_BODY_MAX_BYTES", DEFAULT_LIMITS.bodyMaxBytes, 1024),
  };
}

function readListeners(env: Env, cli: CliOverrides, file: LoadedPolicyFile | undefined): ListenerSpec[] {
  const fromFile = file?.data.listeners;
  if (fromFile !== undefined) {
    const other =
      cli.listen && cli.listen.length > 0
        ? "--listen"
        : env.PORTCULLIS_LISTEN?.trim()
          ? "PORTCULLIS_LISTEN"
          : undefined;
    if (other !== undefined) {
      throw new ConfigError(
        other,
        cli.listen?.join(",") ?? env.PORTCULLIS_LISTEN ?? "",
        `nothing: ${file?.path} defines the listeners`,
      );
    }
    return fromFile.map((l, i) => ({
      ...parseListener(`listeners[${i}].address`, l.address),
      name: l.name,
      ...(l.tls
        ? {
            tls: {
              cert: l.tls.cert,
              key: l.tls.key,
              ...(l.tls.client_ca ? { clientCa: l.tls.client_ca } : {}),
            },
          }
        : {}),
    }));
  }
  if (cli.listen && cli.listen.length > 0) return cli.listen.map((l) => parseListener("--listen", l));
  const raw = env.PORTCULLIS_LISTEN;
  if (raw !== undefined && raw.trim() !== "") {
    return raw
      .split(",")
      .filter((s) => s.trim() !== "")
      .map((l) => parseListener("PORTCULLIS_LISTEN", l));
  }
  // The anchors' bind: dual-stack [::]:2375, or IPv4 only with DISABLE_IPV6.
  const ipv4Only = readBoolean(env, "DISABLE_IPV6") ?? false;
  return [{ kind: "tcp", host: ipv4Only ? "0.0.0.0" : "::", port: DEFAULT_PORT }];
}

function readLogLevel(env: Env, cli: CliOverrides): string {
  const [setting, raw] =
    cli.logLevel !== undefined ? ["--log-level", cli.logLevel] : ["LOG_LEVEL", env.LOG_LEVEL];
  if (raw === undefined || raw.trim() === "") return "info";
  const level = LOG_LEVELS[raw.trim().toLowerCase()];
  if (level === undefined)
    throw new ConfigError(setting, raw, `one of ${Object.keys(LOG_LEVELS).join(", ")}`);
  return level;
}

function readUpstream(env: Env, cli: CliOverrides) {
  const tlsEnv = { tlsVerify: env.DOCKER_TLS_VERIFY, certPath: env.DOCKER_CERT_PATH, home: env.HOME };
  if (cli.upstream !== undefined) return parseUpstream("--upstream", cli.upstream, tlsEnv);
  const socketPath = env.SOCKET_PATH?.trim() || undefined;
  const dockerHost = env.DOCKER_HOST?.trim() || undefined;
  if (socketPath !== undefined && dockerHost !== undefined) {
    throw new ConfigError(
      "SOCKET_PATH",
      socketPath,
      `only one of SOCKET_PATH and DOCKER_HOST (DOCKER_HOST=${JSON.stringify(dockerHost)} is set too)`,
    );
  }
  if (dockerHost !== undefined) return parseUpstream("DOCKER_HOST", dockerHost, tlsEnv);
  return parseUpstream("SOCKET_PATH", socketPath ?? DEFAULT_SOCKET_PATH, tlsEnv);
}

/** The policy file named by --config or PORTCULLIS_CONFIG, validated; undefined when none is named. */
export function readPolicyFile(env: Env, cli: CliOverrides): LoadedPolicyFile | undefined {
  const path = cli.config ?? (env.PORTCULLIS_CONFIG?.trim() || undefined);
  return path === undefined ? undefined : loadPolicyFile(path, ROUTES);
}

/** True when two listeners would bind the same socket (same path, or same TCP port on overlapping hosts). */
function sameSocket(a: ListenerSpec, b: ListenerSpec): boolean {
  if (a.kind === "unix" || b.kind === "unix")
    return a.kind === "unix" && b.kind === "unix" && a.path === b.path;
  if (a.port === 0 || a.port !== b.port) return false;
  const wildcard = (h: string) => h === "::" || h === "0.0.0.0";
  return a.host === b.host || wildcard(a.host) || wildcard(b.host);
}

/** Audit file, admin listener and learn output: all optional, all off by default. */
function readObservability(
  env: Env,
  cli: CliOverrides,
  listeners: readonly ListenerSpec[],
): Pick<ProxyConfig, "auditLogFile" | "adminListener" | "learnOutput"> {
  const pick = (flag: string, value: string | undefined, name: string): [string, string] | undefined => {
    if (value !== undefined) return [flag, value];
    const raw = env[name]?.trim();
    return raw ? [name, raw] : undefined;
  };
  const audit = pick("--audit-log", cli.auditLog, "PORTCULLIS_AUDIT_LOG");
  const admin = pick("--admin-listen", cli.adminListen, "PORTCULLIS_ADMIN_LISTEN");
  const learn = pick("--learn-output", cli.learnOutput, "PORTCULLIS_LEARN_OUTPUT");
  let adminListener: ListenerSpec | undefined;
  if (admin !== undefined) {
    adminListener = { ...parseListener(admin[0], admin[1]), name: "admin" };
    if (listeners.some((l) => sameSocket(l, adminListener as ListenerSpec))) {
      throw new ConfigError(
        admin[0],
        admin[1],
        "an address no API listener uses: the admin listener is always separate (e.g. tcp://127.0.0.1:9375)",
      );
    }
  }
  for (const given of [audit, learn]) {
    if (given !== undefined && given[1].trim() === "")
      throw new ConfigError(given[0], given[1], "a file path");
  }
  return {
    ...(audit ? { auditLogFile: audit[1] } : {}),
    ...(adminListener ? { adminListener } : {}),
    ...(learn ? { learnOutput: learn[1] } : {}),
  };
}

export function loadConfig(env: Env, cli: CliOverrides = {}): ProxyConfig {
  const policyFile = readPolicyFile(env, cli);
  const listeners = readListeners(env, cli, policyFile);
  return {
    ...(policyFile ? { policyFile } : {}),
    ...readObservability(env, cli, listeners),
    listeners,
    upstream: readUpstream(env, cli),
    toggles: readToggles(env),
    logLevel: readLogLevel(env, cli),
    limits: readLimits(env),
    shutdownGraceMs: readInteger(env, "PORTCULLIS_SHUTDOWN_GRACE_MS", 1500, 0),
  };
}

export { ALL_TOGGLE_NAMES };
