/**
 * JSON read as dockerd's Go decoder reads it, or refused where the two could disagree.
 *
 * Go's encoding/json matches struct fields case-insensitively (with Unicode folding: "ſ" is "s",
 * the Kelvin sign is "k"), lets a later duplicate key win (and merges duplicate objects), and
 * replaces invalid UTF-8 silently. JavaScript's JSON.parse does none of that. So: invalid UTF-8,
 * duplicate keys and keys equal under Go's folding are refused, and fields are looked up with the
 * same folding Go uses. Objects keep their entries in order so a documented mutation can write the
 * body back without changing anything else.
 */

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** A number kept as its source text (int64 values survive untouched). */
export interface JsonNumber {
  readonly kind: "number";
  readonly text: string;
}

export interface JsonObject {
  readonly kind: "object";
  readonly entries: [string, JsonValue][];
}

export class JsonRefusal extends Error {}

export const MAX_JSON_DEPTH = 64;

/** Go's case folding of a key for comparison with ASCII field names. */
export function foldKey(key: string): string {
  let out = "";
  for (const ch of key) {
    if (ch === "\u017f") out += "s";
    else if (ch === "\u212a") out += "k";
    else if (ch >= "A" && ch <= "Z") out += ch.toLowerCase();
    else out += ch;
  }
  return out;
}

export function parseGoJson(bytes: Buffer): JsonValue {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new JsonRefusal("the body is not valid UTF-8 (dockerd would replace the invalid bytes)");
  }
  const p = new Parser(text);
  p.ws();
  const value = p.value(0);
  p.ws();
  if (p.i !== text.length) throw new JsonRefusal(`unexpected data after the JSON value at offset ${p.i}`);
  return value;
}

class Parser {
  i = 0;
  constructor(private readonly s: string) {}

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  fail(what: string): never {
    throw new JsonRefusal(`invalid JSON at offset ${this.i}: ${what}`);
  }

  value(depth: number): JsonValue {
    if (depth > MAX_JSON_DEPTH)
      throw new JsonRefusal(`the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`);
    const c = this.s[this.i];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') return this.string();
    if (c === "t") return this.literal("true", true);
    if (c === "f") return this.literal("false", false);
    if (c === "n") return this.literal("null", null);
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
    return this.fail(c === undefined ? "unexpected end" : `unexpected ${JSON.stringify(c)}`);
  }

  literal<T extends JsonValue>(word: string, value: T): T {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return value;
    }
    return this.fail(`expected ${word}`);
  }

  number(): JsonNumber {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (m === null) return this.fail("bad number");
    this.i += m[0].length;
    return { kind: "number", text: m[0] };
  }

  string(): string {
    this.i++;
    let out = "";
    for (;;) {
      const c = this.s.charCodeAt(this.i);
      if (Number.isNaN(c)) this.fail("unterminated string");
      if (c === 0x22) {
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail("control character in string");
      if (c !== 0x5c) {
        const start = this.i;
        while (this.i < this.s.length) {
          const d = this.s.charCodeAt(this.i);
          if (d === 0x22 || d === 0x5c || d < 0x20) break;
          this.i++;
        }
        out += this.s.slice(start, this.i);
        continue;
      }
      const e = this.s[this.i + 1];
      this.i += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = this.s.slice(this.i, this.i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("bad \\u escape");
          out += String.fromCharCode(Number.parseInt(hex, 16));
          this.i += 4;
          break;
        }
        default:
          this.fail("bad escape");
      }
    }
  }

  array(depth: number): JsonValue[] {
    this.i++;
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === "]") {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === "]") return out;
      if (c !== ",") this.fail("expected , or ]");
    }
  }

  object(depth: number): JsonObject {
    this.i++;
    const entries: [string, JsonValue][] = [];
    const seen = new Map<string, string>();
    this.ws();
    if (this.s[this.i] === "}") {
      this.i++;
      return { kind: "object", entries };
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail("expected a key");
      const key = this.string();
      const folded = foldKey(key);
      const earlier = seen.get(folded);
      if (earlier !== undefined) {
        throw new JsonRefusal(
          earlier === key
            ? `duplicate key ${JSON.stringify(key)} (dockerd would merge or keep the last one)`
            : `keys ${JSON.stringify(earlier)} and ${JSON.stringify(key)} differ only in case (dockerd treats them as the same field)`,
        );
      }
      seen.set(folded, key);
      this.ws();
      if (this.s[this.i++] !== ":") this.fail("expected :");
      this.ws();
      entries.push([key, this.value(depth + 1)]);
      this.ws();
      const c = this.s[this.i++];
      if (c === "}") return { kind: "object", entries };
      if (c !== ",") this.fail("expected , or }");
    }
  }
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v) && v.kind === "object";
}

/** A struct field, found as Go finds it (exact name first, then case-folded). */
export function field(obj: JsonValue | undefined, name: string): JsonValue | undefined {
  if (!isObject(obj)) return undefined;
  const exact = obj.entries.find(([k]) => k === name);
  if (exact) return exact[1];
  const folded = foldKey(name);
  return obj.entries.find(([k]) => foldKey(k) === folded)?.[1];
}

/** Follows struct fields: `path(body, "HostConfig", "Privileged")`. */
export function path(obj: JsonValue | undefined, ...names: string[]): JsonValue | undefined {
  let cur = obj;
  for (const n of names) cur = field(cur, n);
  return cur;
}

export function asString(v: JsonValue | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export function asArray(v: JsonValue | undefined): JsonValue[] {
  return Array.isArray(v) ? v : [];
}

/** Map entries (labels, options): keys are case-sensitive in Go maps. */
export function mapEntries(v: JsonValue | undefined): [string, JsonValue][] {
  return isObject(v) ? v.entries : [];
}

export function serializeJson(v: JsonValue): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(serializeJson).join(",")}]`;
  if (v.kind === "number") return v.text;
  return `{${v.entries.map(([k, val]) => `${JSON.stringify(k)}:${serializeJson(val)}`).join(",")}}`;
}
