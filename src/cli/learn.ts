/**
 * `portcullis learn --from AUDIT.log [--config CURRENT.yaml]`: the least-privilege policy, offline,
 * from audit records (the PORTCULLIS_AUDIT_LOG file, or stdout logs at debug level).
 */
import { readFileSync } from "node:fs";
import { readPolicyFile } from "../config/env.js";
import { ConfigError } from "../config/errors.js";
import { LearnBook, learnedPolicyYaml, observationsFromAuditLog } from "../observe/learn.js";

export function learnCommand(options: {
  readonly from: string | undefined;
  readonly config: string | undefined;
  readonly allModes: boolean;
  readonly out: (s: string) => void;
}): number {
  if (options.from === undefined) {
    throw new ConfigError(
      "learn",
      "",
      'an audit log: portcullis learn --from AUDIT.log [--config CURRENT.yaml] ("-" reads stdin)',
    );
  }
  const text = readFileSync(options.from === "-" ? 0 : options.from, "utf8");
  const current = options.config === undefined ? undefined : readPolicyFile({}, { config: options.config });
  const { observed, skipped } = observationsFromAuditLog(text, options.allModes ? "all" : new Set(["learn"]));
  const book = new LearnBook();
  for (const o of observed) book.add(o);
  if (book.size === 0) {
    process.stderr.write(
      `portcullis learn: no usable record in ${options.from}${
        options.allModes ? "" : " from a profile in learn mode (--all-modes uses every forwarded request)"
      }\n`,
    );
  }
  if (skipped > 0)
    process.stderr.write(`portcullis learn: ${skipped} lines were not JSON and were skipped\n`);
  const source = options.from === "-" ? "audit records on stdin" : `audit log ${options.from}`;
  options.out(learnedPolicyYaml(book, current, source));
  return book.size === 0 ? 1 : 0;
}
