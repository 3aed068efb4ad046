/** One record per decision, handed to every observer (audit log, metrics, live view). */

export type DecisionOutcome = "allow" | "deny" | "audit";

export interface DecisionRecord {
  /** When the request arrived (ms since the epoch). */
  readonly time: number;
  readonly listener: string;
  /** Remote address:port, or "unix". */
  readonly peer: string;
  readonly client: string;
  readonly profile: string;
  /** The profile's mode: enforce, audit or learn. */
  readonly mode: "enforce" | "audit" | "learn";
  readonly policyVersion: string;
  readonly method: string;
  /** The request-target as received (untrusted: escape before display). */
  readonly target: string;
  readonly operation: string | null;
  /** allow, deny, or audit (forwarded although the rules deny). */
  readonly decision: DecisionOutcome;
  readonly rule: string | undefined;
  /** Why a request was refused: bad-target, no-route, policy, undecidable, pipelined-after-hijack. */
  readonly reason: string | undefined;
  /** What a denied client was told. */
  readonly message: string | undefined;
  readonly status: number;
  readonly durationMs: number;
  /** Bytes read from and written to the client connection for this exchange (head and body). */
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly tunnelled?: boolean;
  readonly error?: string;
}

export interface Observer {
  /** Called once per request, when its exchange is over (for streams: when the stream ends). */
  decision(record: DecisionRecord): void;
  /** A long-lived exchange (stream or tunnel) started or ended. */
  streamOpened?(kind: "stream" | "tunnel"): void;
  streamClosed?(kind: "stream" | "tunnel"): void;
  /** The daemon could not be reached. */
  upstreamError?(): void;
}

export function combineObservers(observers: readonly Observer[]): Observer {
  return {
    decision: (r) => {
      for (const o of observers) o.decision(r);
    },
    streamOpened: (k) => {
      for (const o of observers) o.streamOpened?.(k);
    },
    streamClosed: (k) => {
      for (const o of observers) o.streamClosed?.(k);
    },
    upstreamError: () => {
      for (const o of observers) o.upstreamError?.();
    },
  };
}
