/**
 * The Tecnativa / linuxserver environment toggles, as plain data: what each one grants and its default.
 * docs/configuration.md's table is checked against this list by a test.
 */

/** A section toggle grants read access (GET/HEAD) to every route of its API section, writes with POST=1. */
export interface SectionToggle {
  readonly name: string;
  readonly section: string;
  readonly defaultOn: boolean;
}

/** An ALLOW_* toggle grants named container actions on its own, without POST or CONTAINERS. */
export interface ActionToggle {
  readonly name: string;
  readonly operations: readonly string[];
}

export const SECTION_TOGGLES: readonly SectionToggle[] = [
  { name: "AUTH", section: "auth", defaultOn: false },
  { name: "BUILD", section: "build", defaultOn: false },
  { name: "COMMIT", section: "commit", defaultOn: false },
  { name: "CONFIGS", section: "configs", defaultOn: false },
  { name: "CONTAINERS", section: "containers", defaultOn: false },
  { name: "DISTRIBUTION", section: "distribution", defaultOn: false },
  { name: "EVENTS", section: "events", defaultOn: true },
  { name: "EXEC", section: "exec", defaultOn: false },
  { name: "GRPC", section: "grpc", defaultOn: false },
  { name: "IMAGES", section: "images", defaultOn: false },
  { name: "INFO", section: "info", defaultOn: false },
  { name: "NETWORKS", section: "networks", defaultOn: false },
  { name: "NODES", section: "nodes", defaultOn: false },
  { name: "PING", section: "_ping", defaultOn: true },
  { name: "PLUGINS", section: "plugins", defaultOn: false },
  { name: "SECRETS", section: "secrets", defaultOn: false },
  { name: "SERVICES", section: "services", defaultOn: false },
  { name: "SESSION", section: "session", defaultOn: false },
  { name: "SWARM", section: "swarm", defaultOn: false },
  { name: "SYSTEM", section: "system", defaultOn: false },
  { name: "TASKS", section: "tasks", defaultOn: false },
  { name: "VERSION", section: "version", defaultOn: true },
  { name: "VOLUMES", section: "volumes", defaultOn: false },
];

/** POST=1 lifts the read-only gate for every method on the enabled sections. */
export const POST_TOGGLE = "POST";

export const ACTION_TOGGLES: readonly ActionToggle[] = [
  { name: "ALLOW_START", operations: ["ContainerStart"] },
  { name: "ALLOW_STOP", operations: ["ContainerStop"] },
  { name: "ALLOW_RESTARTS", operations: ["ContainerStop", "ContainerRestart", "ContainerKill"] },
  { name: "ALLOW_PAUSE", operations: ["ContainerPause"] },
  { name: "ALLOW_UNPAUSE", operations: ["ContainerUnpause"] },
];

/** Every toggle name, for error messages and docs. */
export const ALL_TOGGLE_NAMES: readonly string[] = [
  ...SECTION_TOGGLES.map((t) => t.name),
  POST_TOGGLE,
  ...ACTION_TOGGLES.map((t) => t.name),
];
