/** The policy file's shape (zod). docs/policy.schema.json is generated from it for editors. */
import { createRequire } from "node:module";
import type { z as Zod } from "zod";
import { REDACTIONS } from "../proxy/view.js";

// zod is loaded on first use, from its CommonJS build: a proxy configured by environment toggles
// alone never loads it (idle RSS, docs/benchmarks.md).
const require = createRequire(import.meta.url);

function build(z: typeof Zod) {
  const selector = z
    .string()
    .min(1)
    .describe("operation name, section:access, risk class, or 'METHOD /path/{param}'");
  const selectors = z.union([selector, z.array(selector).min(1)]);

  const conditions = z
    .strictObject({
      query: z
        .record(z.string(), z.union([z.boolean(), z.string(), z.array(z.string()).min(1)]))
        .optional()
        .describe("query parameter -> required value (true/false are Docker booleans; a list means any of)"),
      registry: z
        .array(z.string().min(1))
        .min(1)
        .optional()
        .describe("image references must be under one of these (docker.io, ghcr.io/myorg, registry:5000)"),
    })
    .describe("conditions that must all hold for the rule to apply");

  const allowRule = z.strictObject({ allow: selectors, when: conditions.optional() });
  const denyRule = z.strictObject({ deny: selectors, when: conditions.optional() });
  const ruleSchema = z.union([allowRule, denyRule]);

  const globs = (what: string) => z.array(z.string().min(1)).describe(what);

  /** Request-body rules; every key is optional and falls back to the secure default. */
  const bodyRulesSchema = z
    .strictObject({
      privileged: z
        .boolean()
        .optional()
        .describe("privileged containers, exec and plugin services (default false)"),
      capabilities: globs(
        "capabilities that may be added, without CAP_ (default none; ALL must be listed to allow ALL)",
      ).optional(),
      devices: z
        .boolean()
        .optional()
        .describe("devices, device cgroup rules, device requests such as GPUs (default false)"),
      host_namespaces: z
        .boolean()
        .optional()
        .describe("host network/pid/ipc/uts/userns/cgroupns, macvlan/ipvlan networks (default false)"),
      unconfined: z
        .boolean()
        .optional()
        .describe(
          "seccomp/apparmor unconfined, SELinux disabled, unmasked /proc paths, custom seccomp (default false)",
        ),
      bind_sources: globs("host paths that may be bind-mounted, e.g. /srv/data/** (default none)").optional(),
      volumes_from: z.boolean().optional().describe("VolumesFrom (default false)"),
      sysctls: globs("sysctl names that may be set (default none)").optional(),
      runtimes: globs("runtimes other than the default that may be used (default none)").optional(),
      non_root: z.boolean().optional().describe("require an explicit non-root user (default false)"),
      images: globs(
        "images that may be run, normalized like docker.io/library/nginx (default **)",
      ).optional(),
      exec_commands: globs(
        "exec command lines (argv joined by spaces; * matches anything) that may be created (default *)",
      ).optional(),
    })
    .describe("rules on container/exec/service/volume/network/plugin request bodies");

  /** What a profile may see: objects matching ALL `labels` OR ANY `names` glob (docs/policy.md "Visibility"). */
  const visibilitySchema = z
    .strictObject({
      labels: z
        .record(z.string().min(1), z.string().nullable())
        .optional()
        .describe("labels an object must all carry, label -> value (null: the label is present, any value)"),
      names: z
        .array(z.string().min(1))
        .min(1)
        .optional()
        .describe(
          "name globs, any of which makes an object visible (images: repo tags); * stops at /, ** does not",
        ),
    })
    .describe(
      "containers, services, tasks, networks, volumes and images this profile may see: all labels OR any name; others are 404",
    );

  const profileSchema = z.strictObject({
    mode: z
      .enum(["enforce", "audit", "learn"])
      .default("enforce")
      .describe(
        "audit forwards what the rules would deny and logs it; learn does the same and records every operation used, to write a least-privilege policy",
      ),
    rules: z.array(ruleSchema).default([]).describe("first matching rule wins; no match means deny"),
    visibility: visibilitySchema.optional(),
    redact: z
      .array(z.enum(REDACTIONS))
      .optional()
      .describe('fields removed from answers (docs/policy.md "Redaction"), e.g. container.env'),
    body: z
      .union([z.literal(false), bodyRulesSchema])
      .optional()
      .describe(
        "what request bodies may contain (secure defaults apply when omitted); false turns body inspection off",
      ),
    mutate: z
      .strictObject({
        labels: z
          .record(z.string(), z.string())
          .describe("labels stamped on created containers, services, networks and volumes"),
      })
      .optional(),
  });

  const secretSource = z.union([
    z.strictObject({ env: z.string().min(1).describe("environment variable holding the token") }),
    z.strictObject({ file: z.string().min(1).describe("file holding the token (trailing newline ignored)") }),
  ]);

  const clientSchema = z.strictObject({
    name: z.string().min(1),
    profile: z.string().min(1).describe("name of a profile under profiles:"),
    match: z
      .strictObject({
        listener: z.string().min(1).optional().describe("name of a listener under listeners:"),
        source: z
          .array(z.string().min(1))
          .min(1)
          .optional()
          .describe("client address CIDRs, e.g. 10.0.1.0/24"),
        token: secretSource.optional().describe("bearer token the client sends in Authorization"),
        certificate: z
          .strictObject({ cn: z.string().min(1).optional(), san: z.string().min(1).optional() })
          .optional()
          .describe(
            "verified client certificate on a TLS listener: subject CN and/or a subjectAltName entry such as DNS:traefik",
          ),
      })
      .describe("all given conditions must hold"),
  });

  const listenerSchema = z.strictObject({
    name: z.string().min(1),
    address: z.string().min(1).describe("tcp://HOST:PORT or unix:///PATH?mode=0660"),
    tls: z
      .strictObject({
        cert: z.string().min(1),
        key: z.string().min(1),
        client_ca: z
          .string()
          .min(1)
          .optional()
          .describe("require client certificates signed by this CA (mTLS)"),
      })
      .optional(),
  });

  const policyFileSchema = z.strictObject({
    version: z.literal(1),
    listeners: z.array(listenerSchema).min(1).optional(),
    profiles: z.record(z.string(), profileSchema),
    clients: z.array(clientSchema).default([]),
    default_profile: z
      .string()
      .min(1)
      .optional()
      .describe("profile for clients no entry matches; without it they are denied everything"),
  });

  return { policyFileSchema };
}

type PolicySchemas = ReturnType<typeof build>;

export type PolicyFile = Zod.infer<PolicySchemas["policyFileSchema"]>;

/** The schemas, built on each call (policy loads and reloads are rare). */
export function policySchemas(): PolicySchemas {
  return build((require("zod") as { z: typeof Zod }).z);
}

export function policyJsonSchema(): object {
  const { z } = require("zod") as { z: typeof Zod };
  return z.toJSONSchema(build(z).policyFileSchema, { io: "input" });
}
