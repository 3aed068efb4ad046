/**
 * The soak of test/soak/soak.ts, short: 40 s of mixed load through portcullis with its RSS and fds
 * sampled every second; no growth from the second quarter to the last, no unexpected outcome.
 * `npm run soak -- --minutes N` runs the long form.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { runSoak } from "../soak/soak.js";

const SECONDS = Number(process.env.PORTCULLIS_SOAK_SECONDS ?? 40);

describeWithDockerd("soak (short)", {}, (engine) => {
  it(`${SECONDS} s of mixed load: RSS and fds flat, every operation as expected`, async (t) => {
    const result = await runSoak({ seconds: SECONDS, engine, log: (line) => t.diagnostic(line) });
    assert.ok(result.ok, `${result.reasons.join("; ")}\n${result.table}`);
  });
});
