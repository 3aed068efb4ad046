/** Read-only questions to the daemon that a decision needs (e.g. which driver a network ID has). */
import type { DaemonLookup } from "../policy/policy.js";
import type { Upstream } from "./upstream.js";

export function createDaemonLookup(upstream: Upstream): DaemonLookup {
  return {
    async networkDriver(ref: string): Promise<string | undefined> {
      const { statusCode, body } = await upstream.pool.request({
        method: "GET",
        path: `/networks/${encodeURIComponent(ref)}`,
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      const text = await body.text();
      if (statusCode === 404) return undefined;
      if (statusCode !== 200)
        throw new Error(`the daemon answered ${statusCode} when asked about network ${JSON.stringify(ref)}`);
      const driver = (JSON.parse(text) as { Driver?: unknown }).Driver;
      return typeof driver === "string" ? driver : undefined;
    },
  };
}
