/** The Policy built from a validated policy file: clients in order, each pointing at a profile. */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/errors.js";
import type { LoadedPolicyFile } from "../config/policy-file.js";
import { compileView } from "../proxy/view.js";
import type { RouteDef } from "../routing/route-def.js";
import { compileBodyInspector, SECURE_BODY_DEFAULTS } from "./body-rules.js";
import { type ClientMatcher, compileClientMatch } from "./clients.js";
import type { Policy, Profile, ResolvedClient, ViewFilter } from "./policy.js";
import { compileProfile } from "./profile.js";

/** The profile's visibility and redaction, when it has either. */
function viewOf(spec: LoadedPolicyFile["data"]["profiles"][string]): { view?: ViewFilter } {
  const view = compileView({
    ...(spec.visibility ? { visibility: spec.visibility } : {}),
    ...(spec.redact ? { redact: spec.redact } : {}),
  });
  return view ? { view } : {};
}

const DENY_ALL: Profile = {
  name: "(none)",
  mode: "enforce",
  decide: () => ({
    allow: false,
    rule: "unknown client",
    hint: "no client entry of the policy file matches this connection and there is no default_profile",
  }),
};

/** Reads a token from its env var or file; a missing one is a start-up error, not an open door. */
function readToken(
  source: { env: string } | { file: string },
  env: Readonly<Record<string, string | undefined>>,
  client: string,
): string {
  // ConfigErrors: the CLI reports them as one clear line (no stack), and never shows a token value.
  if ("env" in source) {
    const value = env[source.env];
    if (value === undefined || value === "")
      throw new ConfigError(
        source.env,
        "",
        `the bearer token of client "${client}": token variable ${source.env} is not set or empty`,
      );
    return value;
  }
  let value: string;
  try {
    value = readFileSync(source.file, "utf8").replace(/\r?\n$/, "");
  } catch (error) {
    throw new ConfigError(
      `token file of client "${client}"`,
      source.file,
      `a readable file holding the token (${(error as Error).message})`,
    );
  }
  if (value === "")
    throw new ConfigError(
      `token file of client "${client}"`,
      source.file,
      "a file holding the token; it is empty",
    );
  return value;
}

export function filePolicy(
  loaded: LoadedPolicyFile,
  routes: readonly RouteDef[],
  env: Readonly<Record<string, string | undefined>>,
): Policy {
  const profiles = new Map<string, Profile>();
  for (const [name, spec] of Object.entries(loaded.data.profiles)) {
    profiles.set(
      name,
      compileProfile(
        {
          name,
          mode: spec.mode,
          rules: loaded.rules.get(name) ?? [],
          ...(spec.body === false
            ? {}
            : {
                body: compileBodyInspector(
                  name,
                  spec.mode,
                  { ...SECURE_BODY_DEFAULTS, ...spec.body },
                  spec.mutate,
                ),
              }),
          ...viewOf(spec),
        },
        routes,
      ),
    );
  }
  const clients: { matches: ClientMatcher; resolved: ResolvedClient }[] = loaded.data.clients.map((c) => {
    const { token, ...rest } = c.match;
    return {
      matches: compileClientMatch({ ...rest, ...(token ? { token: readToken(token, env, c.name) } : {}) }),
      resolved: { client: c.name, profile: profiles.get(c.profile) as Profile },
    };
  });
  const fallback: ResolvedClient = {
    client: "anonymous",
    profile: loaded.data.default_profile ? (profiles.get(loaded.data.default_profile) as Profile) : DENY_ALL,
  };
  return {
    version: loaded.version,
    origin: loaded.path,
    summary: loaded.data.clients
      .map((c) => `${c.name}->${c.profile}`)
      .concat(loaded.data.default_profile ? [`others->${loaded.data.default_profile}`] : ["others->deny"]),
    clientNamed(name) {
      if (name === "anonymous") return fallback;
      return clients.find((c) => c.resolved.client === name)?.resolved;
    },
    resolveClient(client) {
      for (const c of clients) if (c.matches(client)) return c.resolved;
      return fallback;
    },
  };
}
