/**
 * What a profile may see. `visibility:` decides which containers, services, tasks, networks,
 * volumes and images exist for it; `redact:` removes fields from answers. This file is plain data
 * and pure functions: the profile's view compiled from the policy file, the redaction vocabulary,
 * and what every operation means for the view. Asking the daemon is visibility.ts's job, rewriting
 * answers response-filter.ts's.
 */
import { anyGlob } from "../policy/glob.js";
import type { ViewedObject, ViewFilter } from "../policy/policy.js";

/** The redaction vocabulary of the policy file. */
export const REDACTIONS = [
  "container.env",
  "container.mounts",
  "secret.data",
  "config.data",
  "swarm.join_tokens",
] as const;
export type Redaction = (typeof REDACTIONS)[number];

const SERVICE_SPECS = ["Spec.TaskTemplate.ContainerSpec", "PreviousSpec.TaskTemplate.ContainerSpec"];

/**
 * Redaction entry -> operation -> JSON paths removed from its answer. `a.b` is a key path, `[]`
 * every element of an array (a list answer starts with `[]`). A path that is absent is skipped.
 */
export const REDACTION_PATHS: Readonly<Record<Redaction, Readonly<Record<string, readonly string[]>>>> = {
  "container.env": {
    ContainerInspect: ["Config.Env"],
    ServiceInspect: SERVICE_SPECS.map((s) => `${s}.Env`),
    ServiceList: SERVICE_SPECS.map((s) => `[].${s}.Env`),
    TaskInspect: ["Spec.ContainerSpec.Env"],
    TaskList: ["[].Spec.ContainerSpec.Env"],
  },
  "container.mounts": {
    ContainerInspect: ["Mounts[].Source", "HostConfig.Binds", "HostConfig.Mounts[].Source"],
    ContainerList: ["[].Mounts[].Source"],
    ServiceInspect: SERVICE_SPECS.map((s) => `${s}.Mounts[].Source`),
    ServiceList: SERVICE_SPECS.map((s) => `[].${s}.Mounts[].Source`),
    TaskInspect: ["Spec.ContainerSpec.Mounts[].Source"],
    TaskList: ["[].Spec.ContainerSpec.Mounts[].Source"],
  },
  "secret.data": { SecretInspect: ["Spec.Data"], SecretList: ["[].Spec.Data"] },
  "config.data": { ConfigInspect: ["Spec.Data"], ConfigList: ["[].Spec.Data"] },
  "swarm.join_tokens": { SwarmInspect: ["JoinTokens"] },
};

/** The objects visibility governs; `exec` instances are seen through their container. */
export type ObjectKind = "container" | "exec" | "image" | "network" | "volume" | "service" | "task";
export type ListKind = "container" | "service" | "task" | "network" | "volume" | "image";

/** What an operation means for a profile with visibility. */
export type ViewRole =
  /** Acts on the object named by path parameter `param`. `decidesFromAnswer`: a read whose own answer says whose it is. */
  | {
      readonly role: "object";
      readonly kind: ObjectKind;
      readonly param: string;
      readonly decidesFromAnswer?: boolean;
      /** Network connect/disconnect: the body's `Container` must be visible too. */
      readonly bodyContainer?: boolean;
    }
  /** Names objects in query parameter `query` (every occurrence). */
  | { readonly role: "query"; readonly kind: ObjectKind; readonly query: string }
  | { readonly role: "list"; readonly kind: ListKind }
  | { readonly role: "events" }
  /** Removes objects it cannot tell apart: refused under visibility. */
  | { readonly role: "prune" };

const objectOps = (kind: ObjectKind, param: string, ops: readonly string[]) =>
  Object.fromEntries(ops.map((op) => [op, { role: "object", kind, param } as ViewRole]));

export const VIEW_ROLES: Readonly<Record<string, ViewRole>> = {
  ...objectOps("container", "name", [
    "CheckpointList",
    "CheckpointCreate",
    "CheckpointDelete",
    "ContainerArchiveInfo",
    "ContainerExport",
    "ContainerChanges",
    "ContainerTop",
    "ContainerLogs",
    "ContainerStats",
    "ContainerAttachWebsocket",
    "ContainerArchive",
    "ContainerKill",
    "ContainerPause",
    "ContainerUnpause",
    "ContainerRestart",
    "ContainerStart",
    "ContainerStop",
    "ContainerWait",
    "ContainerResize",
    "ContainerAttach",
    "ContainerCopy",
    "ContainerExec",
    "ContainerRename",
    "ContainerUpdate",
    "PutContainerArchive",
    "ContainerDelete",
  ]),
  ContainerInspect: { role: "object", kind: "container", param: "name", decidesFromAnswer: true },
  ImageCommit: { role: "query", kind: "container", query: "container" },
  ExecInspect: { role: "object", kind: "exec", param: "id", decidesFromAnswer: true },
  ...objectOps("exec", "name", ["ExecStart", "ExecResize"]),
  ...objectOps("image", "name", [
    "ImageGet",
    "ImageHistory",
    "ImageAttestations",
    "ImagePush",
    "ImageTag",
    "ImageDelete",
  ]),
  ImageInspect: { role: "object", kind: "image", param: "name", decidesFromAnswer: true },
  ImageGetAll: { role: "query", kind: "image", query: "names" },
  NetworkInspect: { role: "object", kind: "network", param: "id", decidesFromAnswer: true },
  NetworkConnect: { role: "object", kind: "network", param: "id", bodyContainer: true },
  NetworkDisconnect: { role: "object", kind: "network", param: "id", bodyContainer: true },
  NetworkDelete: { role: "object", kind: "network", param: "id" },
  VolumeInspect: { role: "object", kind: "volume", param: "name", decidesFromAnswer: true },
  ...objectOps("volume", "name", ["VolumeUpdate", "VolumeDelete"]),
  ServiceInspect: { role: "object", kind: "service", param: "id", decidesFromAnswer: true },
  ...objectOps("service", "id", ["ServiceUpdate", "ServiceDelete", "ServiceLogs"]),
  TaskInspect: { role: "object", kind: "task", param: "id", decidesFromAnswer: true },
  TaskLogs: { role: "object", kind: "task", param: "id" },
  ContainerList: { role: "list", kind: "container" },
  ServiceList: { role: "list", kind: "service" },
  TaskList: { role: "list", kind: "task" },
  NetworkList: { role: "list", kind: "network" },
  NetworkListTrailingSlash: { role: "list", kind: "network" },
  VolumeList: { role: "list", kind: "volume" },
  ImageList: { role: "list", kind: "image" },
  SystemEvents: { role: "events" },
  ContainerPrune: { role: "prune" },
  ImagePrune: { role: "prune" },
  NetworkPrune: { role: "prune" },
  VolumePrune: { role: "prune" },
};

/** Operations whose answers lose fields under `redact`. */
export const REDACTED_OPERATIONS: ReadonlySet<string> = new Set(
  Object.values(REDACTION_PATHS).flatMap((byOp) => Object.keys(byOp)),
);

export interface ViewSpec {
  readonly visibility?: {
    readonly labels?: Readonly<Record<string, string | null>>;
    readonly names?: readonly string[];
  };
  readonly redact?: readonly Redaction[];
}

const hasOwn = (o: object, k: string) => Object.hasOwn(o, k);

/**
 * The profile's view, or undefined when it has neither `visibility` nor `redact` (then answers are
 * relayed untouched). An object is visible when ALL `labels` match (a null value: the label is
 * present) OR ANY `names` glob matches one of its names; with only one of the two, that one decides.
 */
export function compileView(spec: ViewSpec): ViewFilter | undefined {
  const visibility = spec.visibility;
  const redact = [...new Set(spec.redact ?? [])];
  if (visibility === undefined && redact.length === 0) return undefined;
  const labels = visibility?.labels ? Object.entries(visibility.labels) : [];
  const nameMatches = visibility?.names?.length ? anyGlob(visibility.names) : undefined;
  const paths = new Map<string, string[][]>();
  for (const entry of redact) {
    for (const [op, list] of Object.entries(REDACTION_PATHS[entry])) {
      const parsed = paths.get(op) ?? [];
      for (const p of list) parsed.push(parsePath(p));
      paths.set(op, parsed);
    }
  }
  const labelsMatch = (found: unknown): boolean => {
    if (labels.length === 0 || found === null || typeof found !== "object") return false;
    const map = found as Record<string, unknown>;
    return labels.every(([key, want]) => hasOwn(map, key) && (want === null || map[key] === want));
  };
  return {
    kind: "view",
    ...(visibility ? { visibility } : {}),
    redact,
    visible(object: ViewedObject): boolean {
      if (visibility === undefined) return true;
      if (labelsMatch(object.labels)) return true;
      return nameMatches !== undefined && object.names.some((n) => nameMatches(n));
    },
    redactAnswer(operation: string, answer: unknown): number {
      let removed = 0;
      for (const p of paths.get(operation) ?? []) removed += removePath(answer, p, 0);
      return removed;
    },
  };
}

/** `Mounts[].Source` -> ["Mounts", "[]", "Source"]. */
export function parsePath(path: string): string[] {
  const out: string[] = [];
  for (const part of path.split(".")) {
    if (part.endsWith("[]")) {
      if (part.length > 2) out.push(part.slice(0, -2));
      out.push("[]");
    } else out.push(part);
  }
  return out;
}

function removePath(node: unknown, path: readonly string[], at: number): number {
  const step = path[at];
  if (step === undefined || node === null || typeof node !== "object") return 0;
  if (step === "[]") {
    if (!Array.isArray(node)) return 0;
    let n = 0;
    for (const item of node) n += removePath(item, path, at + 1);
    return n;
  }
  if (Array.isArray(node) || !hasOwn(node, step)) return 0;
  const map = node as Record<string, unknown>;
  if (at === path.length - 1) {
    delete map[step];
    return 1;
  }
  return removePath(map[step], path, at + 1);
}

/** A container's own name from inspect's `Name` or list's `Names` ("/web"; "/other/alias" is a legacy link, not a name). */
export function containerNames(names: unknown): string[] {
  const list = Array.isArray(names) ? names : [names];
  return list
    .filter((n): n is string => typeof n === "string")
    .map((n) => (n.startsWith("/") ? n.slice(1) : n))
    .filter((n) => n !== "" && !n.includes("/"));
}

/** An image's names: its repo tags ("<none>:<none>" is no name). */
export function imageNames(repoTags: unknown): string[] {
  return Array.isArray(repoTags)
    ? repoTags.filter((t): t is string => typeof t === "string" && t !== "<none>:<none>")
    : [];
}
