/** The operations vocabulary as a text table. */
import { riskClasses } from "../policy/risk.js";
import type { RouteDef } from "../routing/route-def.js";

export function operationsTable(routes: readonly RouteDef[]): string {
  const rows = routes.map((r) => [
    r.operation,
    r.method,
    r.specPath,
    r.section,
    r.kind,
    r.source === "spec" ? `since ${r.since}` : "daemon only",
    riskClasses(r).join(",") || "-",
  ]);
  const header = ["OPERATION", "METHOD", "PATH", "SECTION", "KIND", "SOURCE", "RISK"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    `${cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd()}\n`;
  return line(header) + rows.map(line).join("");
}
