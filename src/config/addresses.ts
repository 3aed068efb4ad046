/** Parsing of listener and upstream addresses (`tcp://host:port`, `unix:///path?mode=0660`). */
import { join } from "node:path";
import type { ListenerSpec, UpstreamSpec } from "./config.js";
import { ConfigError } from "./errors.js";

const LISTEN_ACCEPTED =
  "tcp://HOST:PORT (HOST may be [::] or 0.0.0.0) or unix:///ABSOLUTE/PATH with optional ?mode=0660&uid=N&gid=N";

export function parseListener(setting: string, raw: string): ListenerSpec {
  const value = raw.trim();
  if (value.startsWith("unix://")) {
    const [path = "", query = ""] = value.slice("unix://".length).split("?", 2);
    if (!path.startsWith("/")) throw new ConfigError(setting, raw, LISTEN_ACCEPTED);
    const params = new URLSearchParams(query);
    for (const key of params.keys()) {
      if (!["mode", "uid", "gid"].includes(key)) throw new ConfigError(setting, raw, LISTEN_ACCEPTED);
    }
    const mode = params.has("mode") ? parseMode(setting, raw, params.get("mode") ?? "") : 0o660;
    const uid = optionalId(setting, raw, params.get("uid"));
    const gid = optionalId(setting, raw, params.get("gid"));
    return {
      kind: "unix",
      path,
      mode,
      ...(uid === undefined ? {} : { uid }),
      ...(gid === undefined ? {} : { gid }),
    };
  }
  if (value.startsWith("tcp://")) {
    const hostPort = parseHostPort(value.slice("tcp://".length));
    if (hostPort === null) throw new ConfigError(setting, raw, LISTEN_ACCEPTED);
    return { kind: "tcp", ...hostPort };
  }
  throw new ConfigError(setting, raw, LISTEN_ACCEPTED);
}

function parseMode(setting: string, raw: string, mode: string): number {
  if (!/^0?[0-7]{3}$/.test(mode)) throw new ConfigError(setting, raw, "an octal socket mode such as 0660");
  return Number.parseInt(mode, 8);
}

function optionalId(setting: string, raw: string, v: string | null): number | undefined {
  if (v === null) return undefined;
  if (!/^[0-9]+$/.test(v)) throw new ConfigError(setting, raw, "a numeric uid/gid");
  return Number.parseInt(v, 10);
}

function parseHostPort(s: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):([0-9]{1,5})\/?$/.exec(s);
  if (m === null) return null;
  const port = Number.parseInt(m[3] as string, 10);
  if (port > 65535) return null;
  return { host: (m[1] ?? m[2]) as string, port };
}

const UPSTREAM_ACCEPTED = "unix:///ABSOLUTE/PATH or tcp://HOST:PORT";

export interface UpstreamEnv {
  readonly dockerHost?: string;
  readonly tlsVerify?: string;
  readonly certPath?: string;
  readonly home?: string;
}

/** The daemon address from DOCKER_HOST (with Docker's TLS variables) or a socket path. */
export function parseUpstream(setting: string, raw: string, env: UpstreamEnv = {}): UpstreamSpec {
  const value = raw.trim();
  if (value.startsWith("unix://")) {
    const socketPath = value.slice("unix://".length);
    if (!socketPath.startsWith("/")) throw new ConfigError(setting, raw, UPSTREAM_ACCEPTED);
    return { kind: "unix", socketPath };
  }
  if (value.startsWith("/")) return { kind: "unix", socketPath: value };
  if (value.startsWith("tcp://")) {
    const hostPort = parseHostPort(value.slice("tcp://".length));
    if (hostPort === null) throw new ConfigError(setting, raw, UPSTREAM_ACCEPTED);
    // Docker's own client rule: a cert path means TLS; DOCKER_TLS_VERIFY (non-empty) means verify it.
    const verify = (env.tlsVerify ?? "") !== "";
    const certDir = env.certPath || (verify && env.home ? join(env.home, ".docker") : "");
    if (!certDir && !verify) return { kind: "tcp", ...hostPort };
    return {
      kind: "tcp",
      ...hostPort,
      tls: {
        verify,
        ca: join(certDir, "ca.pem"),
        cert: join(certDir, "cert.pem"),
        key: join(certDir, "key.pem"),
      },
    };
  }
  throw new ConfigError(setting, raw, UPSTREAM_ACCEPTED);
}
