/**
 * The live view in headless Chromium (Debian's `chromium`, driven by playwright-core): the page
 * loads from the admin listener, requests made through the proxy appear without a reload (SSE),
 * a denial shows the rule that would allow it, and a `<script>` in an attacker's target is shown
 * as text and never runs. PORTCULLIS_UPDATE_SCREENSHOT=1 also writes docs/live-view.png.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, it } from "node:test";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { serve } from "../../src/cli/serve.js";
import { loadConfig } from "../../src/config/env.js";
import { createLogger } from "../../src/observe/logger.js";
import { runDocker } from "../helpers/docker-cli.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { REPO_ROOT } from "../helpers/proxy.js";
import { httpRequest, rawExchange } from "../helpers/raw-http.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKENS = { TRAEFIK_TOKEN: "traefik-token-0123456789", DOZZLE_TOKEN: "dozzle-token-0123456789" };

const POLICY = `version: 1
profiles:
  traefik:
    rules:
      - allow: [SystemPingHead, SystemPing, SystemVersion, SystemEvents, ContainerList, ContainerInspect]
  dozzle:
    mode: audit
    rules:
      - allow: [SystemPingHead, SystemInfo, ContainerList, ContainerInspect]
  ci:
    rules:
      - allow: [SystemPing, SystemVersion]
      - deny: exfiltrate
clients:
  - name: traefik
    profile: traefik
    match: { token: { env: TRAEFIK_TOKEN } }
  - name: dozzle
    profile: dozzle
    match: { token: { env: DOZZLE_TOKEN } }
  - name: ci
    profile: ci
    match: { source: [127.0.0.1/32] }
`;

function chromiumSkip(): string | false {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI === "true")
    throw new Error(`CI=true but ${CHROMIUM} is missing (apt-get install chromium)`);
  return `needs ${CHROMIUM} (apt-get install chromium)`;
}

const skip = chromiumSkip();

describeWithDockerd("live view in a browser", {}, async (engine) => {
  if (skip) {
    it("skipped", { skip }, () => {});
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "portcullis-live-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(policyPath, POLICY);
  const env = {
    SOCKET_PATH: engine.socketPath,
    PORTCULLIS_LISTEN: "tcp://127.0.0.1:0",
    PORTCULLIS_ADMIN_LISTEN: "tcp://127.0.0.1:0",
    LOG_LEVEL: "info",
    ...TOKENS,
  };
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const config = loadConfig(env, { config: policyPath });
  const serving = await serve(config, createLogger(config.logLevel, sink), env);
  after(() => serving.close(200));
  const portOf = (a: string) => Number(a.slice(a.lastIndexOf(":") + 1));
  const port = portOf(serving.addresses[0] as string);
  const adminPort = portOf(serving.adminAddress as string);

  let context: BrowserContext;
  let page: Page;
  before(async () => {
    const r = await runDocker(engine.host, ["run", "-d", "--name", "web", engine.image, "sleep", "300"]);
    assert.equal(r.code, 0, r.stderr);
    context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      viewport: { width: 1360, height: 940 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(10_000);
  });
  after(() => context?.close());

  /** One request through the proxy, exact bytes (a browser would percent-encode the `<`). */
  async function request(method: string, target: string, token?: string): Promise<number | undefined> {
    const headers: [string, string][] = token ? [["Authorization", `Bearer ${token}`]] : [];
    const ex = await rawExchange({ port }, httpRequest(method, target, headers), {
      responses: 1,
      methods: [method],
      settleMs: 5,
    });
    return ex.finals[0]?.status;
  }

  it("shows decisions live, with the rule that would allow a denial, and never runs a target", async () => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    let dialogs = 0;
    page.on("dialog", (d) => {
      dialogs++;
      void d.dismiss();
    });
    await page.goto(`http://127.0.0.1:${adminPort}/`);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "live");
    await page.evaluate(() => {
      (window as unknown as { __marker: number }).__marker = 42;
    });
    assert.equal(await page.textContent("#policy-version"), serving.policy().version);

    assert.equal(await request("GET", "/v1.41/version"), 200);
    const hostile = "/v1.41/containers/<script>window.__pwned=1;alert(1)</script>/logs";
    assert.equal(await request("GET", hostile), 403);
    const hostile2 = "/v1.41/containers/<img/src/onerror=window.__pwned=2>/json";
    await request("GET", hostile2);

    await page.waitForFunction(
      (t) => document.querySelector("#denials tbody")?.textContent?.includes(t) ?? false,
      "GET /v1.41/containers/<script>window.__pwned=1;alert(1)</script>/logs",
    );
    await page.waitForFunction(
      () => document.querySelector("#recent tbody")?.textContent?.includes("GET /v1.41/version") ?? false,
    );
    const state = await page.evaluate(() => ({
      marker: (window as unknown as { __marker?: number }).__marker,
      pwned: (window as unknown as { __pwned?: number }).__pwned,
      injected: document.querySelectorAll("main script, main img").length,
      denial: [...document.querySelectorAll("#denials tbody tr")].map((tr) =>
        [...tr.querySelectorAll("td")].map((td) => td.textContent),
      ),
      clients: document.querySelector("#clients tbody")?.textContent ?? "",
    }));
    assert.equal(state.marker, 42, "no reload: the page got the decisions by SSE");
    assert.equal(state.pwned, undefined, "the target's script never ran");
    assert.equal(state.injected, 0, "no element was created from a target");
    assert.equal(dialogs, 0);
    assert.deepEqual(errors, []);
    const row = state.denial.find((cells) => cells.some((c) => c?.includes("<script>")));
    assert.ok(row, JSON.stringify(state.denial));
    assert.ok(row.includes(`GET ${hostile}`), "the target is shown exactly, as text");
    assert.ok(row.includes("ContainerLogs"));
    assert.ok(row.includes('add "- allow: ContainerLogs" to profile ci, above the rule "deny: exfiltrate"'));
    assert.match(state.clients, /ci/);
  });

  it("reads well: a screenshot with several clients", async () => {
    const traefik = TOKENS.TRAEFIK_TOKEN;
    const dozzle = TOKENS.DOZZLE_TOKEN;
    await request("HEAD", "/_ping", traefik);
    await request("GET", "/v1.41/version", traefik);
    await request("GET", "/v1.41/containers/json?all=1", traefik);
    await request("GET", "/v1.41/containers/web/json", traefik);
    await request("GET", "/v1.41/containers/web/logs?stdout=1&tail=10", traefik);
    await request("HEAD", "/_ping", dozzle);
    await request("GET", "/v1.41/info", dozzle);
    await request("GET", "/v1.41/containers/web/logs?follow=0&stdout=1&tail=100", dozzle);
    await request("POST", "/v1.41/containers/web/stop", traefik);
    await request("GET", "/v1.41/info");
    await page.waitForFunction(() => (document.querySelector("#clients tbody")?.children.length ?? 0) >= 3);
    await page.waitForFunction(
      () => document.querySelector("#denials tbody")?.textContent?.includes("ContainerStop") ?? false,
    );
    await page.waitForTimeout(1600); // the highlight animation ends
    const shot = join(dir, "live-view.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 20_000, "a real picture");
    if (process.env.PORTCULLIS_UPDATE_SCREENSHOT === "1") {
      await page.screenshot({ path: join(REPO_ROOT, "docs", "live-view.png"), fullPage: true });
    }
    const reloadedText = await page.evaluate(async () => (await fetch("/live/state")).json());
    assert.ok((reloadedText as { clients: unknown[] }).clients.length >= 3);
  });
});
