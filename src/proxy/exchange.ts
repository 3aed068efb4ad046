/** One request's bookkeeping on its connection, and the decision record made from it. */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { Observer } from "../observe/observer.js";
import type { ClientContext } from "../policy/policy.js";
import type { GateResult } from "./gate.js";

export interface Exchange {
  readonly listener: string;
  readonly peer: string;
  readonly method: string;
  readonly target: string;
  readonly started: number;
  readonly socket: Socket | Duplex;
  /** Bytes of this connection already counted for earlier requests: this exchange's bytes are the rest. */
  readonly readBefore: number;
  readonly writtenBefore: number;
  readonly counted: ByteLedger;
}

/** Per connection, how many bytes read were already attributed to earlier exchanges. */
export type ByteLedger = WeakMap<object, number>;

export function exchange(
  listener: string,
  socket: Socket | Duplex,
  method: string,
  target: string,
  counted: ByteLedger,
): Exchange {
  const s = socket as Socket;
  return {
    counted,
    listener,
    peer: peerOf(socket),
    method,
    target,
    started: Date.now(),
    socket,
    // The parser has already read this request's head when we get here: count from the last exchange.
    readBefore: counted.get(socket) ?? 0,
    writtenBefore: s.bytesWritten ?? 0,
  };
}

export function observe(
  observer: Observer,
  ex: Exchange,
  result: GateResult,
  status: number,
  extra: { tunnelled?: boolean; error?: string } = {},
): void {
  const s = ex.socket as Socket;
  const allowed = result.verdict === "allow";
  const read = s.bytesRead ?? 0;
  ex.counted.set(ex.socket, read);
  observer.decision({
    time: ex.started,
    listener: ex.listener,
    peer: ex.peer,
    client: result.client,
    profile: result.profile,
    mode: result.mode,
    policyVersion: result.policyVersion,
    method: ex.method,
    target: ex.target,
    operation: allowed ? result.match.route.operation : result.operation,
    decision: allowed ? (result.decision.audited ? "audit" : "allow") : "deny",
    rule: result.decision?.rule,
    reason: allowed ? undefined : result.reason,
    message: allowed ? undefined : result.message,
    status,
    durationMs: Date.now() - ex.started,
    bytesIn: read - ex.readBefore,
    bytesOut: (s.bytesWritten ?? 0) - ex.writtenBefore,
    ...extra,
  });
}

export function peerOf(socket: Socket | Duplex): string {
  const s = socket as Socket;
  return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : "unix";
}

export function clientContext(
  listener: string,
  socket: Socket | Duplex,
  authorization: string | undefined,
): ClientContext {
  const tls = socket as TLSSocket;
  let certificate: ClientContext["certificate"];
  if (tls.encrypted && tls.authorized) {
    const cert = tls.getPeerCertificate();
    const cn = cert.subject?.CN;
    certificate = { subjectCN: Array.isArray(cn) ? cn[0] : cn, subjectAltName: cert.subjectaltname };
  }
  return {
    listener,
    remoteAddress: (socket as Socket).remoteAddress,
    authorization,
    ...(certificate ? { certificate } : {}),
  };
}
