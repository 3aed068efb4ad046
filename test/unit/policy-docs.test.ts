import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readCaseFile, runCases } from "../../src/cli/check.js";
import { loadPolicyFile } from "../../src/config/policy-file.js";
import { policyJsonSchema } from "../../src/config/policy-schema.js";
import { filePolicy } from "../../src/policy/file-policy.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";
import { REPO_ROOT } from "../helpers/proxy.js";

const examples = join(REPO_ROOT, "examples", "policy");
const doc = readFileSync(join(REPO_ROOT, "docs", "policy.md"), "utf8");

describe("docs/policy.md and its examples", () => {
  for (const file of readdirSync(examples).filter((f) => f.endsWith(".cases.yaml"))) {
    it(`${file} passes against the policy it names`, () => {
      const cases = readCaseFile(join(examples, file));
      const policy = filePolicy(loadPolicyFile(join(cases.baseDir, cases.config as string), ROUTES), ROUTES, {
        CI_TOKEN: "example",
      });
      const result = runCases(policy, cases.cases);
      assert.equal(result.failed, 0, result.report.join("\n"));
      assert.ok(result.passed > 0);
    });
  }

  it("shows every example file verbatim", () => {
    for (const file of readdirSync(examples)) {
      assert.ok(doc.includes(readFileSync(join(examples, file), "utf8")), `${file} is not in docs/policy.md`);
    }
  });

  it("ships the JSON Schema generated from the validator", () => {
    const shipped = JSON.parse(readFileSync(join(REPO_ROOT, "docs", "policy.schema.json"), "utf8"));
    assert.deepEqual(shipped, policyJsonSchema(), "regenerate with: npm run gen:schema");
  });
});
