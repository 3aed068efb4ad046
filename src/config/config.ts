/** The proxy's whole configuration: plain data, built once at start and handed in. */
import type { ToggleValues } from "../policy/env-policy.js";
import type { LoadedPolicyFile } from "./policy-file.js";

/** Certificate files of a TLS listener; with `clientCa`, clients must present a certificate it signed. */
export interface ListenerTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string;
}

export type ListenerSpec = (
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | {
      readonly kind: "unix";
      readonly path: string;
      readonly mode: number;
      readonly uid?: number;
      readonly gid?: number;
    }
) & {
  /** Name clients can be recognised by (policy file `match.listener`). */
  readonly name?: string;
  readonly tls?: ListenerTls;
};

export interface TlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Verify the daemon's certificate against `ca` (DOCKER_TLS_VERIFY). */
  readonly verify: boolean;
}

export type UpstreamSpec =
  | { readonly kind: "unix"; readonly socketPath: string }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number; readonly tls?: TlsFiles };

export interface Limits {
  /** Largest request head (request line + headers) in bytes; larger gets 431. */
  readonly maxHeaderBytes: number;
  /** Most header fields in one request; more gets 431 (never silently truncated). */
  readonly maxHeaderCount: number;
  /** Open client connections per listener; more are accepted and closed at once, unanswered. */
  readonly maxConnections: number;
  /** Time a client has to send a complete request head (slowloris guard). */
  readonly headersTimeoutMs: number;
  /** Idle keep-alive connections are closed after this long. */
  readonly keepAliveTimeoutMs: number;
  /** Largest request body read before a hijack (exec start's JSON); larger gets 413. */
  readonly hijackBodyMaxBytes: number;
  /** Largest body read for inspection (container/service create...); larger gets 413. */
  readonly bodyMaxBytes: number;
}

export interface ProxyConfig {
  readonly listeners: readonly ListenerSpec[];
  /** The validated policy file (PORTCULLIS_CONFIG / --config); without it the toggles decide. */
  readonly policyFile?: LoadedPolicyFile;
  readonly upstream: UpstreamSpec;
  readonly toggles: ToggleValues;
  /** pino level name. */
  readonly logLevel: string;
  readonly limits: Limits;
  /** Time open streams get to end on SIGTERM before the process exits. */
  readonly shutdownGraceMs: number;
  /** Audit file with every decision (PORTCULLIS_AUDIT_LOG); reopened on SIGUSR1. */
  readonly auditLogFile?: string;
  /** Admin listener for /metrics, /health, /ready and the live view (PORTCULLIS_ADMIN_LISTEN); never an API listener. */
  readonly adminListener?: ListenerSpec;
  /** Where learn-mode profiles' generated policy is written (PORTCULLIS_LEARN_OUTPUT). */
  readonly learnOutput?: string;
}

export const DEFAULT_LIMITS: Limits = {
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 100,
  maxConnections: 4096,
  headersTimeoutMs: 30_000,
  keepAliveTimeoutMs: 60_000,
  hijackBodyMaxBytes: 1024 * 1024,
  bodyMaxBytes: 1024 * 1024,
};

export function describeListener(l: ListenerSpec): string {
  const address =
    l.kind === "tcp"
      ? `${l.tls ? "tls" : "tcp"}://${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}`
      : `unix://${l.path}`;
  return l.name ? `${l.name}=${address}` : address;
}

export function describeUpstream(u: UpstreamSpec): string {
  if (u.kind === "unix") return `unix://${u.socketPath}`;
  const tls = u.tls ? (u.tls.verify ? " (TLS, verified)" : " (TLS, not verified)") : "";
  return `tcp://${u.host}:${u.port}${tls}`;
}
