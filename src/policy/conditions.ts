/**
 * `when:` conditions on a rule, read as dockerd reads the request: query values are Go's
 * `r.FormValue` (first occurrence wins; booleans by `httputils.BoolValue`), image references are
 * normalized like `reference.ParseNormalizedNamed`.
 */
import type { RoutedRequest } from "./policy.js";

export interface Conditions {
  /** Query parameter -> required value: true/false (Docker boolean), a string, or any of a list. */
  readonly query?: Readonly<Record<string, boolean | string | readonly string[]>>;
  /** The image reference (ImageCreate's fromImage, ImagePush/DistributionInspect's name) must be under one of these. */
  readonly registry?: readonly string[];
}

export type ConditionResult = "match" | "no-match" | { readonly refuse: string };

/**
 * Go's `r.FormValue(key)` on the query (`url.ParseQuery`, Go >= 1.17): pairs split on `&`, a pair
 * with `;` or a bad escape is dropped, `+` is a space, the first value wins; undefined when absent.
 */
export function goFormValue(rawQuery: string, key: string): string | undefined {
  for (const pair of rawQuery.split("&")) {
    if (pair === "" || pair.includes(";")) continue;
    const eq = pair.indexOf("=");
    const k = decodeFormComponent(eq === -1 ? pair : pair.slice(0, eq));
    const v = decodeFormComponent(eq === -1 ? "" : pair.slice(eq + 1));
    if (k === undefined || v === undefined) continue;
    if (k === key) return v;
  }
  return undefined;
}

function decodeFormComponent(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return undefined;
  }
}

/** `httputils.BoolValue`: only "", "0", "no", "false", "none" (any case, trimmed) are false. */
export function goBoolValue(value: string | undefined): boolean {
  const v = (value ?? "").trim().toLowerCase();
  return !(v === "" || v === "0" || v === "no" || v === "false" || v === "none");
}

/** `reference.ParseNormalizedNamed` reduced to what registry checks need: `domain/path`, no tag or digest. */
export function normalizeImageName(ref: string): string {
  let name = ref.split("@")[0] as string;
  const lastSlash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  if (colon > lastSlash) name = name.slice(0, colon);
  const first = name.split("/")[0] as string;
  const hasDomain =
    name.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (hasDomain) return name;
  return name.includes("/") ? `docker.io/${name}` : `docker.io/library/${name}`;
}

function imageOf(request: RoutedRequest): string | undefined {
  const op = request.match.route.operation;
  if (op === "ImageCreate") {
    const q = queryOf(request);
    if (goFormValue(q, "fromSrc") !== undefined) return undefined;
    return goFormValue(q, "fromImage");
  }
  if (op === "ImagePush" || op === "DistributionInspect" || op === "ImageTag")
    return request.match.params.name;
  return undefined;
}

function queryOf(request: RoutedRequest): string {
  const at = request.rawTarget.indexOf("?");
  return at === -1 ? "" : request.rawTarget.slice(at + 1);
}

const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\b/i;

export function evaluateConditions(when: Conditions, request: RoutedRequest): ConditionResult {
  if (when.query !== undefined || when.registry !== undefined) {
    // dockerd's r.FormValue reads form bodies before the query: such a body could override what we check.
    if (FORM_TYPES.test(request.contentType ?? "")) {
      return {
        refuse:
          "form-encoded request bodies are refused where a rule reads query parameters (dockerd would let the body override them)",
      };
    }
  }
  const query = queryOf(request);
  for (const [key, want] of Object.entries(when.query ?? {})) {
    const got = goFormValue(query, key);
    if (typeof want === "boolean") {
      if (goBoolValue(got) !== want) return "no-match";
    } else if (typeof want === "string") {
      if (got !== want) return "no-match";
    } else if (got === undefined || !want.includes(got)) {
      return "no-match";
    }
  }
  if (when.registry !== undefined) {
    const image = imageOf(request);
    if (image === undefined) return "no-match";
    const name = normalizeImageName(image);
    if (!when.registry.some((r) => name === r || name.startsWith(`${r.replace(/\/+$/, "")}/`)))
      return "no-match";
  }
  return "match";
}
