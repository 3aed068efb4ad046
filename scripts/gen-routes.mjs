#!/usr/bin/env node
// Generates src/routing/route-table.generated.ts from the Engine API specs v1.41..v1.55.
//
//   node scripts/gen-routes.mjs           write the file
//   node scripts/gen-routes.mjs --check   regenerate in memory; exit 1 if the committed file differs
//
// The specs are read from $DOCKER_API_SPECS, else ../shared/docker-api next to the repo root.
// The logic (and the dockerd registration list it relies on) is in scripts/gen-routes-lib.mjs.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import {
  defaultSpecDir,
  GENERATED_FILE,
  GENERATED_RELPATH,
  generateRouteTableSource,
} from "./gen-routes-lib.mjs";

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== "--check");
if (unknown.length > 0) {
  console.error(`usage: node scripts/gen-routes.mjs [--check]  (unknown: ${unknown.join(" ")})`);
  process.exit(2);
}
const check = args.includes("--check");

const specDir = defaultSpecDir();
if (!existsSync(specDir)) {
  console.error(`gen-routes: specs folder not found: ${specDir} (set DOCKER_API_SPECS to override)`);
  process.exit(2);
}

let source;
try {
  source = generateRouteTableSource(specDir);
} catch (err) {
  console.error(`gen-routes: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}

if (!check) {
  writeFileSync(GENERATED_FILE, source);
  const count = (source.match(/^ {4}operation: /gm) ?? []).length;
  console.log(`gen-routes: wrote ${GENERATED_RELPATH} (${count} routes) from ${specDir}`);
  process.exit(0);
}

const committed = existsSync(GENERATED_FILE) ? readFileSync(GENERATED_FILE, "utf8") : null;
if (committed === source) {
  console.log(`gen-routes: ${GENERATED_RELPATH} is up to date`);
  process.exit(0);
}
if (committed === null) {
  console.error(`gen-routes: ${GENERATED_RELPATH} is missing; run \`npm run gen:routes\``);
  process.exit(1);
}
const want = source.split("\n");
const have = committed.split("\n");
let i = 0;
while (i < want.length && i < have.length && want[i] === have[i]) i++;
console.error(`gen-routes: ${GENERATED_RELPATH} is out of date (first difference at line ${i + 1}):`);
console.error(`  committed: ${have[i] === undefined ? "<end of file>" : JSON.stringify(have[i])}`);
console.error(`  generated: ${want[i] === undefined ? "<end of file>" : JSON.stringify(want[i])}`);
console.error("Run `npm run gen:routes` (or `node scripts/gen-routes.mjs`) and commit the result.");
process.exit(1);
