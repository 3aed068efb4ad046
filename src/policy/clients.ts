/** Recognising a client: by listener, source address, bearer token or client certificate. */
import { createHash, timingSafeEqual } from "node:crypto";
import { BlockList, isIPv4 } from "node:net";
import type { ClientContext } from "./policy.js";

export interface ClientMatchSpec {
  readonly listener?: string;
  readonly source?: readonly string[];
  /** The expected token itself (already read from its env var or file). */
  readonly token?: string;
  readonly certificate?: { readonly cn?: string; readonly san?: string };
}

export type ClientMatcher = (client: ClientContext) => boolean;

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** The token a client presents: `Bearer TOKEN`, or the password of `Basic` credentials. */
export function presentedToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const [scheme, value] = authorization.trim().split(/\s+/, 2);
  if (value === undefined) return undefined;
  if (scheme?.toLowerCase() === "bearer") return value;
  if (scheme?.toLowerCase() === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon === -1 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

/** Strips the IPv4-mapped IPv6 prefix Node reports on dual-stack sockets. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

export function compileClientMatch(spec: ClientMatchSpec): ClientMatcher {
  const checks: ClientMatcher[] = [];
  if (spec.listener !== undefined) {
    const name = spec.listener;
    checks.push((c) => c.listener === name);
  }
  if (spec.source !== undefined) {
    const list = new BlockList();
    for (const cidr of spec.source) {
      const [address, bits] = cidr.split("/") as [string, string | undefined];
      const type = isIPv4(address) ? "ipv4" : "ipv6";
      if (bits === undefined) list.addAddress(address, type);
      else list.addSubnet(address, Number(bits), type);
    }
    checks.push((c) => {
      if (c.remoteAddress === undefined) return false;
      const address = plainAddress(c.remoteAddress);
      return list.check(address, isIPv4(address) ? "ipv4" : "ipv6");
    });
  }
  if (spec.token !== undefined) {
    const expected = digest(spec.token);
    // Compared as fixed-length digests so neither the value nor its length leaks through timing.
    checks.push((c) => {
      const token = presentedToken(c.authorization);
      return token !== undefined && timingSafeEqual(digest(token), expected);
    });
  }
  if (spec.certificate !== undefined) {
    const { cn, san } = spec.certificate;
    checks.push((c) => {
      if (c.certificate === undefined) return false;
      if (cn !== undefined && c.certificate.subjectCN !== cn) return false;
      if (san !== undefined && !(c.certificate.subjectAltName ?? "").split(/,\s*/).includes(san))
        return false;
      return true;
    });
  }
  return (client) => checks.every((check) => check(client));
}
