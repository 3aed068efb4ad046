/** The policy file's shape (zod). docs/policy.schema.json is generated from it for editors. */
import { z } from "zod";

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
export const ruleSchema = z.union([allowRule, denyRule]);

export const profileSchema = z.strictObject({
  mode: z
    .enum(["enforce", "audit", "learn"])
    .default("enforce")
    .describe(
      "audit forwards what the rules would deny and logs it; learn does the same and records every operation used, to write a least-privilege policy",
    ),
  rules: z.array(ruleSchema).default([]).describe("first matching rule wins; no match means deny"),
});

const secretSource = z.union([
  z.strictObject({ env: z.string().min(1).describe("environment variable holding the token") }),
  z.strictObject({ file: z.string().min(1).describe("file holding the token (trailing newline ignored)") }),
]);

export const clientSchema = z.strictObject({
  name: z.string().min(1),
  profile: z.string().min(1).describe("name of a profile under profiles:"),
  match: z
    .strictObject({
      listener: z.string().min(1).optional().describe("name of a listener under listeners:"),
      source: z.array(z.string().min(1)).min(1).optional().describe("client address CIDRs, e.g. 10.0.1.0/24"),
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

export const listenerSchema = z.strictObject({
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

export const policyFileSchema = z.strictObject({
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

export type PolicyFile = z.infer<typeof policyFileSchema>;

export function policyJsonSchema(): object {
  return z.toJSONSchema(policyFileSchema, { io: "input" });
}
