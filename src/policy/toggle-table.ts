/** What each environment toggle grants, operation by operation (rendered into docs/configuration.md). */
import type { RouteDef } from "../routing/route-def.js";
import { isRead } from "./risk.js";
import { ACTION_TOGGLES, SECTION_TOGGLES } from "./toggles.js";

export interface ToggleGrant {
  readonly toggle: string;
  readonly defaultOn: boolean;
  readonly reads: readonly RouteDef[];
  /** Granted only together with POST=1 (or, for ALLOW_*, on their own). */
  readonly writes: readonly RouteDef[];
}

export function toggleGrants(routes: readonly RouteDef[]): ToggleGrant[] {
  const grants: ToggleGrant[] = SECTION_TOGGLES.map((t) => {
    const inSection = routes.filter((r) => r.section === t.section);
    return {
      toggle: t.name,
      defaultOn: t.defaultOn,
      reads: inSection.filter(isRead),
      writes: inSection.filter((r) => !isRead(r)),
    };
  });
  for (const a of ACTION_TOGGLES) {
    grants.push({
      toggle: a.name,
      defaultOn: false,
      reads: [],
      writes: routes.filter((r) => a.operations.includes(r.operation)),
    });
  }
  return grants;
}

const cell = (routes: readonly RouteDef[]) =>
  routes.length === 0
    ? "-"
    : routes.map((r) => `${r.operation} (\`${r.method} ${r.specPath}\`)`).join("<br>");

export function toggleTableMarkdown(routes: readonly RouteDef[]): string {
  const rows = toggleGrants(routes).map((g) => {
    const isAction = g.toggle.startsWith("ALLOW_");
    return `| \`${g.toggle}\` | ${g.defaultOn ? "1" : "0"} | ${cell(g.reads)} | ${cell(g.writes)}${isAction ? " (no POST needed)" : ""} |`;
  });
  const unreachable = routes.filter((r) => !SECTION_TOGGLES.some((t) => t.section === r.section));
  return [
    "| Toggle | Default | Read operations (GET/HEAD) | Write operations (need `POST=1` too) |",
    "|---|---|---|---|",
    ...rows,
    "",
    `No toggle grants: ${unreachable.map((r) => `${r.operation} (\`${r.method} ${r.specPath}\`)`).join(", ")}.`,
    "",
  ].join("\n");
}
