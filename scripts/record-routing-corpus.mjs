#!/usr/bin/env node
// Records test/data/routing-corpus.json: every corpus request-target (hand-written, one per route,
// generated from a fixed seed) with each of GET HEAD POST PUT DELETE OPTIONS, and what a real
// dockerd 20.10 answered when asked directly on its unix socket.
//
//   npm run build && node scripts/record-routing-corpus.mjs [--out FILE] [--socket PATH]
//
// Without --socket it starts a private engine (test/helpers/dockerd.ts: no swarm, no image) and
// stops it at the end. Only harmless requests are sent: every id is "portcullis-nonexistent", and
// requests whose handler could change state, reach the network or run for long are not sent at all
// (they are recorded as not asked; see notAskedReason in test/helpers/routing-corpus.ts).
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = (p) => join(ROOT, "dist", p);
const { ROUTES } = await import(dist("src/routing/route-table.generated.js"));
const corpus = await import(dist("test/helpers/routing-corpus.js"));
const { startDockerd } = await import(dist("test/helpers/dockerd.js"));

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
};
const out = opt("--out") ?? join(ROOT, "test", "data", "routing-corpus.json");

let engine;
let socketPath = opt("--socket");
const started = Date.now();
try {
  if (!socketPath) {
    engine = await startDockerd({ swarm: false, image: false });
    socketPath = engine.socketPath;
  }
  const recording = await corpus.recordCorpus({ path: socketPath }, ROUTES, (done, total) => {
    if (done % 500 === 0) process.stderr.write(`  ${done}/${total}\n`);
  });
  writeFileSync(out, corpus.serializeCorpus(recording));
  const c = recording.counts;
  console.log(
    `wrote ${out}: ${c.targets} targets (${c.hand} hand-written, ${c.route} route, ${c.generated} generated) x ${corpus.METHODS.length} methods = ${c.entries} entries; asked ${c.asked}, not asked ${c.notAsked}; ${Math.round((Date.now() - started) / 1000)} s`,
  );
} finally {
  await engine?.stop();
}
