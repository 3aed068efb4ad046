import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { toggleTableMarkdown } from "../../src/policy/toggle-table.js";
import { ALL_TOGGLE_NAMES } from "../../src/policy/toggles.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";
import { REPO_ROOT } from "../helpers/proxy.js";

const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");

describe("the user's manual says what the code does", () => {
  it("docs/configuration.md has the current toggle table", () => {
    const doc = read("docs/configuration.md");
    const table = doc.split("<!-- toggles:begin -->\n")[1]?.split("<!-- toggles:end -->")[0];
    assert.equal(table, toggleTableMarkdown(ROUTES), "regenerate with: node dist/src/cli/main.js toggles");
  });

  it("documents every environment variable the code reads", () => {
    const doc = read("docs/configuration.md");
    const code = ["src/config/env.ts", "src/config/addresses.ts"].map(read).join("\n");
    const readVars = [
      ...code.matchAll(/"((?:PORTCULLIS|DOCKER)_[A-Z_]+|SOCKET_PATH|LOG_LEVEL|DISABLE_IPV6)"/g),
    ].map((m) => m[1]);
    for (const name of [...new Set(readVars), ...ALL_TOGGLE_NAMES])
      assert.ok(doc.includes(name as string), name);
  });
});
