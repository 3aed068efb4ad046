/** What every policy answers: allow or deny one routed request, and why. */
import type { RouteMatch } from "../routing/match.js";

export interface Decision {
  readonly allow: boolean;
  /** The rule that decided, for logs: e.g. "CONTAINERS=1" or "default deny". */
  readonly rule: string;
  /** For a denial: what would allow it, shown to the client after the operation and target. */
  readonly hint?: string;
}

export interface RoutedRequest {
  readonly method: string;
  /** The request-target exactly as received and forwarded. */
  readonly rawTarget: string;
  readonly match: RouteMatch;
}

export interface Policy {
  decide(request: RoutedRequest): Decision;
  /** The effective allow list, one entry per grant, for the start-up line. */
  readonly summary: readonly string[];
}
