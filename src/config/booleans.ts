/** Boolean env values: the anchors' integers (0 = off, any other integer = on) plus true/yes/on and false/no/off. */
export type BooleanParse = { ok: true; value: boolean | undefined } | { ok: false };

export const ACCEPTED_BOOLEANS = "0 or 1 (any integer: 0 is off), true/false, yes/no, on/off";

export function parseBoolean(raw: string | undefined): BooleanParse {
  if (raw === undefined) return { ok: true, value: undefined };
  const v = raw.trim().toLowerCase();
  if (v === "") return { ok: true, value: undefined };
  if (/^[+-]?[0-9]+$/.test(v)) return { ok: true, value: Number.parseInt(v, 10) !== 0 };
  if (v === "true" || v === "yes" || v === "on") return { ok: true, value: true };
  if (v === "false" || v === "no" || v === "off") return { ok: true, value: false };
  return { ok: false };
}
