/**
 * Built-in risk classes, as plain data. `exfiltrate` marks reads that hand out data a read-only
 * client should not get by accident; `containers:read` style selectors leave them out unless named.
 */
import type { RouteDef } from "../routing/route-def.js";

export const RISK_CLASSES = ["exfiltrate", "hijack", "write", "admin"] as const;
export type RiskClass = (typeof RISK_CLASSES)[number];

/** Reads that copy files, logs, images, secrets or cluster keys out of the daemon. */
const EXFILTRATE = new Set([
  "ContainerArchive",
  "ContainerArchiveInfo",
  "ContainerExport",
  "ContainerLogs",
  "ContainerAttachWebsocket",
  "ContainerCopy",
  "ServiceLogs",
  "TaskLogs",
  "ImageGet",
  "ImageGetAll",
  "SwarmInspect",
  "SwarmUnlockkey",
]);

/** Operations that change the daemon or the cluster itself rather than a workload. */
const ADMIN = new Set([
  "SwarmInit",
  "SwarmJoin",
  "SwarmLeave",
  "SwarmUpdate",
  "SwarmUnlock",
  "NodeUpdate",
  "NodeDelete",
  "PluginPull",
  "PluginEnable",
  "PluginDisable",
  "PluginUpgrade",
  "PluginCreate",
  "PluginPush",
  "PluginSet",
  "PluginDelete",
  "SystemAuth",
  "Session",
  "Grpc",
  "ContainerPrune",
  "ImagePrune",
  "NetworkPrune",
  "VolumePrune",
  "BuildPrune",
  "CheckpointCreate",
  "CheckpointDelete",
]);

const READ_METHODS = new Set(["GET", "HEAD"]);
/** GETs that write: attach/ws sends the client's bytes to the container's stdin. */
export const WRITING_GETS: ReadonlySet<string> = new Set(["ContainerAttachWebsocket"]);

export function isRead(route: RouteDef): boolean {
  return READ_METHODS.has(route.method) && !WRITING_GETS.has(route.operation);
}

export function riskClasses(route: RouteDef): RiskClass[] {
  const classes: RiskClass[] = [];
  if (EXFILTRATE.has(route.operation) || route.section === "debug") classes.push("exfiltrate");
  if (route.kind === "hijack") classes.push("hijack");
  if (!isRead(route)) classes.push("write");
  if (ADMIN.has(route.operation) || route.section === "debug") classes.push("admin");
  return classes;
}
