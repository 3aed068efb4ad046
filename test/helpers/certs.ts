/**
 * Test helper: a throw-away PKI made with the `openssl` CLI (EC P-256, valid for 2 days) for mTLS
 * tests: a CA, a server certificate for localhost/127.0.0.1, client certificates with chosen CNs,
 * and a client certificate signed by an unrelated CA (must be refused).
 *
 *   const skip = opensslMissing();
 *   const pki = makeTestPki(dir, ["admin", "someone"]);
 *   pki.clients.admin.cert, pki.clients.admin.key, pki.ca, pki.server.cert, pki.server.key
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  /** The CA certificate: the listener's client_ca and the client's --tlscacert. */
  readonly ca: string;
  /** For the proxy's TLS listener: CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1. */
  readonly server: KeyPair;
  /** One client certificate per requested CN (SAN DNS:<cn>), signed by `ca`. */
  readonly clients: Readonly<Record<string, KeyPair>>;
  /** A client certificate (CN=admin) signed by a different CA: a TLS listener must refuse it. */
  readonly rogue: KeyPair;
}

/** Why no PKI can be made here (no usable `openssl`), or undefined. */
export function opensslMissing(): string | undefined {
  const r = spawnSync("openssl", ["version"], { encoding: "utf8", timeout: 10_000 });
  if (r.error !== undefined) return `the openssl CLI is not available (${r.error.message})`;
  if (r.status !== 0) return `\`openssl version\` failed: ${r.stderr.trim()}`;
  return undefined;
}

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { encoding: "utf8", timeout: 30_000 });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed: ${r.error?.message ?? r.stderr}`);
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function makeCa(dir: string, name: string): KeyPair {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  openssl([
    "req",
    "-x509",
    ...EC,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "2",
    "-subj",
    `/CN=portcullis test ${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { cert, key };
}

function issue(dir: string, ca: KeyPair, name: string, cn: string, extensions: string[]): KeyPair {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions.join("\n")}\n`);
  openssl(["req", "-new", ...EC, "-keyout", key, "-out", csr, "-subj", `/CN=${cn}`]);
  openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    "2",
    "-extfile",
    ext,
  ]);
  return { cert, key };
}

/** Writes a CA, a server certificate and one client certificate per CN into `dir`. */
export function makeTestPki(dir: string, clientCns: readonly string[]): TestPki {
  mkdirSync(dir, { recursive: true });
  const ca = makeCa(dir, "ca");
  const server = issue(dir, ca, "server", "localhost", [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
  ]);
  const client = (signer: KeyPair, name: string, cn: string) =>
    issue(dir, signer, name, cn, [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=clientAuth",
      `subjectAltName=DNS:${cn}`,
    ]);
  const clients: Record<string, KeyPair> = {};
  for (const cn of clientCns) clients[cn] = client(ca, `client-${cn}`, cn);
  const rogue = client(makeCa(dir, "rogue-ca"), "client-rogue", "admin");
  return { dir, ca: ca.cert, server, clients, rogue };
}
