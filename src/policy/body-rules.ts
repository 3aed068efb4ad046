/**
 * Rules on what a client may create: the bodies of container, exec, service, volume, network and
 * plugin requests, read with Go's semantics (go-json.ts). Every profile of a policy file has them,
 * with the secure defaults below unless it says otherwise.
 */
import { posix } from "node:path";
import { normalizeImageName } from "./conditions.js";
import { globToRegex } from "./glob.js";
import {
  asArray,
  asString,
  field,
  isObject,
  type JsonObject,
  JsonRefusal,
  type JsonValue,
  mapEntries,
  parseGoJson,
  path,
  serializeJson,
} from "./go-json.js";
import type { BodyInspector, BodyVerdict, DaemonLookup, ProfileMode, RoutedRequest } from "./policy.js";

/** What a profile allows inside request bodies. Plain data, as written under `body:`. */
export interface BodyRules {
  readonly privileged: boolean;
  /** Capabilities that may be added (CapAdd, CapabilityAdd, plugin privileges), without "CAP_"; "ALL" must be listed to allow ALL. */
  readonly capabilities: readonly string[];
  readonly devices: boolean;
  /** Host network, PID, IPC, UTS, user and cgroup namespaces; macvlan/ipvlan networks. */
  readonly host_namespaces: boolean;
  /** seccomp/apparmor unconfined, SELinux labels disabled, unmasked /proc paths, custom seccomp profiles. */
  readonly unconfined: boolean;
  /** Host paths that may be bind-mounted (Binds, Mounts type=bind, local volumes with o=bind), as globs. */
  readonly bind_sources: readonly string[];
  readonly volumes_from: boolean;
  /** Sysctl names that may be set, as globs. */
  readonly sysctls: readonly string[];
  /** Runtimes other than the default that may be asked for. */
  readonly runtimes: readonly string[];
  /** Require an explicit non-root user (root, "0", "00", "0:0", "root:x" and the image default are refused). */
  readonly non_root: boolean;
  /** Images (normalized, e.g. docker.io/library/nginx) that may be run, as globs. */
  readonly images: readonly string[];
  /** Exec command lines (argv joined by spaces) that may be created; `*` matches anything. */
  readonly exec_commands: readonly string[];
}

export const SECURE_BODY_DEFAULTS: BodyRules = {
  privileged: false,
  capabilities: [],
  devices: false,
  host_namespaces: false,
  unconfined: false,
  bind_sources: [],
  volumes_from: false,
  sysctls: [],
  runtimes: [],
  non_root: false,
  images: ["**"],
  exec_commands: ["*"],
};

/** Labels stamped on created containers, services, networks and volumes (overwriting the client's). */
export interface Mutation {
  readonly labels: Readonly<Record<string, string>>;
}

interface Violation {
  readonly rule: keyof BodyRules;
  readonly what: string;
}

const INSPECTED = new Set([
  "ContainerCreate",
  "ContainerUpdate",
  "ContainerExec",
  "ServiceCreate",
  "ServiceUpdate",
  "VolumeCreate",
  "NetworkCreate",
  "PluginPull",
  "PluginUpgrade",
]);

const LABELLED = new Set(["ContainerCreate", "ServiceCreate", "NetworkCreate", "VolumeCreate"]);

const normalizeCap = (c: string) => c.trim().toUpperCase().replace(/^CAP_/, "");

/** Root, as dockerd would run it: uid 0 by number or name, or no user (the image's default). */
export function isRootUser(user: string | undefined): boolean {
  const name = (user ?? "").split(":")[0]?.trim() ?? "";
  if (name === "") return true;
  if (/^[0-9]+$/.test(name)) return Number(name) === 0;
  return name === "root";
}

const BUILTIN_NETWORK_MODES = new Set(["", "bridge", "host", "none", "default"]);

class Checker {
  readonly violations: Violation[] = [];
  /** Network names or IDs whose driver decides (a network with the host driver is host networking). */
  readonly networkRefs: { ref: string; where: string }[] = [];
  private readonly bindOk: (p: string) => boolean;
  private readonly sysctlOk: (s: string) => boolean;
  private readonly imageOk: (s: string) => boolean;
  private readonly commandOk: (s: string) => boolean;
  private readonly caps: ReadonlySet<string>;

  constructor(private readonly rules: BodyRules) {
    const matcher = (globs: readonly string[]) => {
      const res = globs.map(globToRegex);
      return (v: string) => res.some((r) => r.test(v));
    };
    this.bindOk = matcher(rules.bind_sources);
    this.sysctlOk = matcher(rules.sysctls);
    this.imageOk = matcher(rules.images);
    const commands = rules.exec_commands.map(
      (g) => new RegExp(`^${g.split("*").map(escapeRegex).join(".*")}$`, "su"),
    );
    this.commandOk = (v) => commands.some((r) => r.test(v));
    this.caps = new Set(rules.capabilities.map(normalizeCap));
  }

  private flag(rule: keyof BodyRules, what: string): void {
    this.violations.push({ rule, what });
  }

  privileged(on: boolean, what: string) {
    if (on && !this.rules.privileged) this.flag("privileged", what);
  }

  capabilities(caps: JsonValue | undefined, where: string) {
    for (const c of asArray(caps)) {
      const cap = normalizeCap(asString(c) ?? "");
      if (!this.caps.has(cap))
        this.flag("capabilities", `${where} adds capability ${JSON.stringify(asString(c))}`);
    }
  }

  namespace(mode: JsonValue | undefined, where: string) {
    const m = asString(mode)?.trim().toLowerCase();
    if (m === "host" && !this.rules.host_namespaces) this.flag("host_namespaces", `${where} is "host"`);
  }

  /** A network given by name or ID: "host" directly, or any name/ID the daemon says has the host driver. */
  network(ref: JsonValue | undefined, where: string) {
    const r = asString(ref)?.trim() ?? "";
    if (this.rules.host_namespaces || r.toLowerCase().startsWith("container:")) return;
    if (r.toLowerCase() === "host") this.flag("host_namespaces", `${where} is "host"`);
    else if (!BUILTIN_NETWORK_MODES.has(r.toLowerCase())) this.networkRefs.push({ ref: r, where });
  }

  async resolveNetworks(daemon: DaemonLookup) {
    for (const { ref, where } of this.networkRefs) {
      if ((await daemon.networkDriver(ref)) === "host")
        this.flag("host_namespaces", `${where} ${JSON.stringify(ref)} is the host network`);
    }
  }

  bindSource(source: string, where: string) {
    const normalized = posix.normalize(source).replace(/(.)\/+$/, "$1");
    if (!this.bindOk(normalized))
      this.flag("bind_sources", `${where} mounts host path ${JSON.stringify(source)}`);
  }

  /** A local volume driver with o=bind is a bind mount of `device`. */
  volumeDriverOptions(options: JsonValue | undefined, where: string) {
    const opts = new Map(mapEntries(options).map(([k, v]) => [k.toLowerCase(), asString(v) ?? ""]));
    const o = (opts.get("o") ?? "").split(",").map((x) => x.trim());
    if (o.includes("bind") || o.includes("rbind"))
      this.bindSource(opts.get("device") ?? "", `${where} (local volume with o=bind)`);
  }

  mounts(mounts: JsonValue | undefined, where: string) {
    asArray(mounts).forEach((m, i) => {
      const type = asString(field(m, "Type"))?.toLowerCase();
      const source = asString(field(m, "Source")) ?? "";
      if (type === "bind") this.bindSource(source, `${where}[${i}]`);
      if (type === "volume")
        this.volumeDriverOptions(path(m, "VolumeOptions", "DriverConfig", "Options"), `${where}[${i}]`);
    });
  }

  sysctls(sysctls: JsonValue | undefined, where: string) {
    for (const [name] of mapEntries(sysctls)) {
      if (!this.sysctlOk(name)) this.flag("sysctls", `${where} sets ${JSON.stringify(name)}`);
    }
  }

  securityOpts(opts: JsonValue | undefined, where: string) {
    for (const o of asArray(opts)) {
      const s = (asString(o) ?? "").trim();
      const [key = "", value = ""] = s.split(/[=:](.*)/s);
      const k = key.toLowerCase();
      const v = value.trim().toLowerCase();
      const unconfined =
        ((k === "seccomp" || k === "apparmor" || k === "systempaths") && v === "unconfined") ||
        (k === "label" && v === "disable") ||
        (k === "seccomp" && v.startsWith("{"));
      if (unconfined && !this.rules.unconfined)
        this.flag("unconfined", `${where} has ${JSON.stringify(s.slice(0, 60))}`);
    }
  }

  user(user: JsonValue | undefined, where: string) {
    if (this.rules.non_root && isRootUser(asString(user))) {
      this.flag(
        "non_root",
        `${where} runs as ${asString(user) ? JSON.stringify(asString(user)) : "the image's default user"}`,
      );
    }
  }

  image(image: JsonValue | undefined, where: string) {
    const ref = asString(image);
    if (ref === undefined) return;
    const name = normalizeImageName(ref);
    if (!this.imageOk(name))
      this.flag("images", `${where} ${JSON.stringify(ref)} (${name}) is not an allowed image`);
  }

  runtime(runtime: JsonValue | undefined, where: string) {
    const r = asString(runtime) ?? "";
    if (r !== "" && r !== "runc" && !this.rules.runtimes.includes(r))
      this.flag("runtimes", `${where} asks for runtime ${JSON.stringify(r)}`);
  }

  devices(hc: JsonValue | undefined, where: string) {
    if (this.rules.devices) return;
    for (const f of ["Devices", "DeviceCgroupRules", "DeviceRequests"]) {
      if (asArray(field(hc, f)).length > 0) this.flag("devices", `${where}.${f} is not empty`);
    }
  }

  volumesFrom(list: JsonValue | undefined, where: string) {
    if (asArray(list).length > 0 && !this.rules.volumes_from)
      this.flag("volumes_from", `${where} is not empty`);
  }

  command(cmd: JsonValue | undefined, where: string) {
    const line = asArray(cmd)
      .map((a) => asString(a) ?? "")
      .join(" ");
    if (!this.commandOk(line))
      this.flag("exec_commands", `${where} ${JSON.stringify(line.slice(0, 80))} is not an allowed command`);
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\/]/g, "\\$&");
}

function checkContainerCreate(c: Checker, body: JsonValue) {
  c.image(field(body, "Image"), "Image");
  c.user(field(body, "User"), "User");
  const hc = field(body, "HostConfig");
  c.privileged(field(hc, "Privileged") === true, "HostConfig.Privileged is true");
  c.capabilities(field(hc, "CapAdd"), "HostConfig.CapAdd");
  c.devices(hc, "HostConfig");
  c.network(field(hc, "NetworkMode"), "HostConfig.NetworkMode");
  for (const ns of ["PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode"])
    c.namespace(field(hc, ns), `HostConfig.${ns}`);
  for (const [name] of mapEntries(path(body, "NetworkingConfig", "EndpointsConfig")))
    c.network(name, "NetworkingConfig.EndpointsConfig network");
  c.securityOpts(field(hc, "SecurityOpt"), "HostConfig.SecurityOpt");
  for (const p of ["MaskedPaths", "ReadonlyPaths"]) {
    if (field(hc, p) !== undefined && field(hc, p) !== null)
      c.securityOpts([`systempaths=unconfined`], `HostConfig.${p}`);
  }
  asArray(field(hc, "Binds")).forEach((b, i) => {
    const source = (asString(b) ?? "").split(":")[0] ?? "";
    if (source.startsWith("/")) c.bindSource(source, `HostConfig.Binds[${i}]`);
  });
  c.mounts(field(hc, "Mounts"), "HostConfig.Mounts");
  c.volumesFrom(field(hc, "VolumesFrom"), "HostConfig.VolumesFrom");
  c.sysctls(field(hc, "Sysctls"), "HostConfig.Sysctls");
  c.runtime(field(hc, "Runtime"), "HostConfig.Runtime");
}

function checkService(c: Checker, body: JsonValue) {
  const task = field(body, "TaskTemplate");
  const cs = field(task, "ContainerSpec");
  c.image(field(cs, "Image"), "TaskTemplate.ContainerSpec.Image");
  c.user(field(cs, "User"), "TaskTemplate.ContainerSpec.User");
  c.mounts(field(cs, "Mounts"), "TaskTemplate.ContainerSpec.Mounts");
  c.capabilities(field(cs, "CapabilityAdd"), "TaskTemplate.ContainerSpec.CapabilityAdd");
  c.sysctls(field(cs, "Sysctls"), "TaskTemplate.ContainerSpec.Sysctls");
  const privileges = field(cs, "Privileges");
  if (
    asString(path(privileges, "Seccomp", "Mode"))?.toLowerCase() === "unconfined" ||
    path(privileges, "Seccomp", "Profile") !== undefined
  ) {
    c.securityOpts(["seccomp=unconfined"], "TaskTemplate.ContainerSpec.Privileges.Seccomp");
  }
  if (asString(path(privileges, "AppArmor", "Mode"))?.toLowerCase() === "disabled") {
    c.securityOpts(["apparmor=unconfined"], "TaskTemplate.ContainerSpec.Privileges.AppArmor");
  }
  if (path(privileges, "SELinuxContext", "Disable") === true)
    c.securityOpts(["label=disable"], "TaskTemplate.ContainerSpec.Privileges.SELinuxContext");
  for (const [list, where] of [
    [field(task, "Networks"), "TaskTemplate.Networks"],
    [field(body, "Networks"), "Networks"],
  ] as const) {
    asArray(list).forEach((n, i) => {
      c.network(field(n, "Target"), `${where}[${i}].Target`);
    });
  }
  // A plugin task installs and runs a (privileged) plugin on every node.
  const runtime = asString(field(task, "Runtime"))?.toLowerCase();
  if (runtime === "plugin" || field(task, "PluginSpec") !== undefined)
    c.privileged(true, "TaskTemplate.Runtime is plugin");
}

function checkPluginPrivileges(c: Checker, body: JsonValue) {
  for (const p of asArray(body)) {
    const name = asString(field(p, "Name"))?.toLowerCase();
    const values = asArray(field(p, "Value")).map((v) => asString(v) ?? "");
    if (name === "network" && values.includes("host")) c.namespace("host", "plugin privilege network");
    if (name === "host pid" || name === "host-pid") c.namespace("host", "plugin privilege host pid");
    if (name === "mount") for (const v of values) c.bindSource(v, "plugin privilege mount");
    if (name === "device" || name === "allow-all-devices")
      c.devices({ kind: "object", entries: [["Devices", values]] }, "plugin privilege");
    if (name === "capabilities") c.capabilities(values, "plugin privilege capabilities");
  }
}

function checkBody(c: Checker, operation: string, body: JsonValue): void {
  switch (operation) {
    case "ContainerCreate":
      checkContainerCreate(c, body);
      break;
    case "ContainerUpdate":
      c.devices(body, "body");
      break;
    case "ContainerExec":
      c.privileged(field(body, "Privileged") === true, "Privileged is true");
      c.user(field(body, "User"), "User");
      c.command(field(body, "Cmd"), "Cmd");
      break;
    case "ServiceCreate":
    case "ServiceUpdate":
      checkService(c, body);
      break;
    case "VolumeCreate":
      if ((asString(field(body, "Driver")) ?? "local") === "local")
        c.volumeDriverOptions(field(body, "DriverOpts"), "DriverOpts");
      break;
    case "NetworkCreate": {
      const driver = asString(field(body, "Driver"))?.toLowerCase();
      if (driver === "macvlan" || driver === "ipvlan")
        c.namespace("host", `Driver ${driver} (attaches to a host interface)`);
      break;
    }
    case "PluginPull":
    case "PluginUpgrade":
      checkPluginPrivileges(c, body);
      break;
  }
}

function stampLabels(operation: string, body: JsonValue, labels: Readonly<Record<string, string>>): boolean {
  if (!isObject(body) || !LABELLED.has(operation)) return false;
  const setIn = (obj: JsonObject, name: string) => {
    let entry = obj.entries.find(([k]) => k.toLowerCase() === name.toLowerCase());
    if (entry === undefined || !isObject(entry[1])) {
      const fresh: JsonObject = { kind: "object", entries: [] };
      if (entry) entry[1] = fresh;
      else {
        entry = [name, fresh];
        obj.entries.push(entry);
      }
    }
    const map = entry[1] as JsonObject;
    for (const [k, v] of Object.entries(labels)) {
      const existing = map.entries.find(([key]) => key === k);
      if (existing) existing[1] = v;
      else map.entries.push([k, v]);
    }
  };
  setIn(body, "Labels");
  if (operation === "ServiceCreate") {
    const cs = path(body, "TaskTemplate", "ContainerSpec");
    if (isObject(cs)) setIn(cs, "Labels");
  }
  return true;
}

export function compileBodyInspector(
  profile: string,
  mode: ProfileMode,
  rules: BodyRules,
  mutation: Mutation | undefined,
): BodyInspector {
  return {
    inspects: (operation) => INSPECTED.has(operation) || (mutation !== undefined && LABELLED.has(operation)),
    async check(request: RoutedRequest, bytes: Buffer, daemon: DaemonLookup): Promise<BodyVerdict> {
      const operation = request.match.route.operation;
      let body: JsonValue;
      try {
        body = bytes.length === 0 ? { kind: "object", entries: [] } : parseGoJson(bytes);
      } catch (error) {
        if (!(error instanceof JsonRefusal)) throw error;
        return {
          ok: false,
          status: 400,
          rule: "body.json",
          message: `the request body was refused: ${error.message}`,
        };
      }
      const checker = new Checker(rules);
      checkBody(checker, operation, body);
      await checker.resolveNetworks(daemon);
      const first = checker.violations[0];
      if (first !== undefined) {
        const message = `profile ${profile}, body rule body.${first.rule}: ${first.what}${
          checker.violations.length > 1 ? ` (and ${checker.violations.length - 1} more)` : ""
        }`;
        if (mode === "enforce") return { ok: false, status: 403, rule: `body.${first.rule}`, message };
        return { ok: true, body: bytes, mutated: false, audit: { rule: `body.${first.rule}`, message } };
      }
      if (mutation !== undefined && stampLabels(operation, body, mutation.labels)) {
        return { ok: true, body: Buffer.from(serializeJson(body), "utf8"), mutated: true };
      }
      return { ok: true, body: bytes, mutated: false };
    },
  };
}
