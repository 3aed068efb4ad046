/** What every policy answers: allow or deny one routed request from one client, and why. */
import type { RouteMatch } from "../routing/match.js";

/** Where a rule was written, for messages and `portcullis check`. */
export interface RuleSource {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export interface Decision {
  readonly allow: boolean;
  /** The rule that decided, for logs: e.g. "CONTAINERS=1", "allow: containers:read" or "default deny". */
  readonly rule: string;
  readonly source?: RuleSource;
  /** For a denial: what would allow it, shown to the client after the operation and target. */
  readonly hint?: string;
  /** A request the client's framing makes undecidable: refused with 400 whatever the rules say. */
  readonly refuse?: string;
  /** Set when the profile is in audit mode and the rules would have denied: forwarded anyway. */
  readonly audited?: boolean;
}

/** Who sent a request: what the listener, the connection and the headers tell. */
export interface ClientContext {
  readonly listener: string;
  readonly remoteAddress: string | undefined;
  /** `Authorization` header, if any (never logged, never forwarded). */
  readonly authorization: string | undefined;
  /** Subject CN and subjectAltName of a verified client certificate (TLS listeners). */
  readonly certificate?: {
    readonly subjectCN: string | undefined;
    readonly subjectAltName: string | undefined;
  };
}

export interface RoutedRequest {
  readonly method: string;
  /** The request-target exactly as received and forwarded. */
  readonly rawTarget: string;
  readonly match: RouteMatch;
  readonly contentType?: string | undefined;
}

/** enforce denies; audit and learn forward what the rules would deny (learn also records what is used). */
export type ProfileMode = "enforce" | "audit" | "learn";

export interface Profile {
  readonly name: string;
  readonly mode: ProfileMode;
  decide(request: RoutedRequest): Decision;
  /** Rules on request bodies (create/update/exec...), when the profile inspects them. */
  readonly body?: BodyInspector;
  /** What the profile may see (visibility) and what is removed from answers (redaction), when configured. */
  readonly view?: ViewFilter;
}

/** Checks (and, for documented mutations, rewrites) the body of an allowed request before it is forwarded. */
export interface BodyInspector {
  /** Whether `operation` has a body this inspector must read before forwarding. */
  inspects(operation: string): boolean;
  /** The verdict on the complete body: forward `body` (the original bytes unless mutated), or refuse. */
  check(request: RoutedRequest, body: Buffer, daemon: DaemonLookup): Promise<BodyVerdict>;
}

/** What body rules may ask the daemon (read-only). */
export interface DaemonLookup {
  /** The driver of a network given by name or ID ("host", "bridge", ...), undefined when there is none. */
  networkDriver(ref: string): Promise<string | undefined>;
}

export type BodyVerdict =
  | {
      readonly ok: true;
      readonly body: Buffer;
      readonly mutated: boolean;
      /** Set when an audit or learn profile would have refused the body: forwarded, logged. */
      readonly audit?: { readonly rule: string; readonly message: string };
    }
  | { readonly ok: false; readonly status: 400 | 403 | 413; readonly message: string; readonly rule: string };

/** Response-side policy of a profile; implemented in src/proxy (it needs the daemon). */
export interface ViewFilter {
  readonly kind: "view";
  /** The profile's `visibility:`, or undefined when it sees every object (it only redacts). */
  readonly visibility?: {
    readonly labels?: Readonly<Record<string, string | null>>;
    readonly names?: readonly string[];
  };
  /** The profile's `redact:` vocabulary entries (see src/proxy/view.ts), in file order. */
  readonly redact: readonly string[];
  /** Whether an object with these names and labels may be seen (always true without visibility). */
  visible(object: ViewedObject): boolean;
  /** Removes the redacted fields from the parsed JSON answer of `operation`, in place; returns how many. */
  redactAnswer(operation: string, answer: unknown): number;
}

/** An object as visibility sees it: names (containers without the leading "/", image repo tags) and labels. */
export interface ViewedObject {
  readonly names: readonly string[];
  readonly labels: unknown;
}

export interface ResolvedClient {
  /** Client name from the policy file, or "anonymous" when none matched. */
  readonly client: string;
  readonly profile: Profile;
}

/** The whole access policy: who the client is, then what its profile allows. */
export interface Policy {
  /** Short content hash of the policy's source, logged with every decision. */
  readonly version: string;
  /** Where the policy comes from: "environment toggles" or the file path. */
  readonly origin: string;
  /** The effective allow list, one entry per grant, for the start-up line. */
  readonly summary: readonly string[];
  resolveClient(client: ClientContext): ResolvedClient;
  /** The client entry with this name (offline tools); "anonymous" gives what unmatched clients get. */
  clientNamed(name: string): ResolvedClient | undefined;
}
