/**
 * Routing differential: portcullis must classify every request-target exactly as dockerd routes it.
 *
 * test/data/routing-corpus.json (scripts/record-routing-corpus.mjs) holds ~950 hostile and ordinary
 * request-targets x GET HEAD POST PUT DELETE OPTIONS, with what a real dockerd 20.10 answered when
 * asked directly: redirect (301), not-found-route (404 page not found), handler (which operations),
 * bad-request / net-http (Go's net/http answered). Requests whose handler would act were not sent;
 * for those, an independent model of dockerd's router (Dockerd2010Router) gives the answer, and that
 * model is itself checked against every recorded daemon answer.
 *
 *   - offline: the corpus matches the generator; the model agrees with every recorded answer;
 *     portcullis (over the wire, in front of a stub daemon) classifies every entry as dockerd did;
 *   - live (private dockerd): the recorded answers still hold (a), and with portcullis in front of the
 *     daemon through the byte tap, under several toggle sets, the daemon receives exactly the
 *     requests portcullis allowed (c).
 *
 * Deliberate differences (documented in docs/security.md): portcullis refuses with 400 what dockerd
 * would route after reading control bytes or invalid UTF-8 out of the path, absolute-form targets,
 * and anything Node's HTTP parser rejects (raw spaces, raw bytes >= 0x80, heads over the limit);
 * and it knows routes newer daemons serve (ImageAttestations, VolumeUpdate, versioned /debug/*) that
 * 20.10 answers with page not found.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { canonicalTarget } from "../../src/routing/canonical.js";
import { buildRouteIndex, matchRoute } from "../../src/routing/match.js";
import { ROUTES } from "../../src/routing/route-table.generated.js";
import { describeWithDockerd } from "../helpers/dockerd.js";
import { REPO_ROOT, startProxy, type TestProxy } from "../helpers/proxy.js";
import { messageOf } from "../helpers/raw-http.js";
import {
  ask,
  type Corpus,
  type CorpusEntry,
  Dockerd2010Router,
  exchangeCorpusRequest,
  fingerprint,
  handWrittenTargets,
  inDockerd2010,
  METHODS,
  mapLimit,
  type OracleResult,
  type RecordedAnswer,
  routeTargets,
  toAnswer,
} from "../helpers/routing-corpus.js";
import { allowedByProxy, seenByDaemon, startTap, type Tap } from "../helpers/tap.js";

const CORPUS_PATH = join(REPO_ROOT, "test", "data", "routing-corpus.json");
const corpus = JSON.parse(readFileSync(CORPUS_PATH, "utf8")) as Corpus;
const oracle = new Dockerd2010Router(ROUTES);
const index = buildRouteIndex(ROUTES);

type Asked = Extract<RecordedAnswer, { s: number }>;
const isAsked = (a: RecordedAnswer): a is Asked => "s" in a;

interface Job {
  readonly entry: CorpusEntry;
  readonly method: string;
  readonly answer: RecordedAnswer;
}
const jobs: Job[] = corpus.entries.flatMap((entry) =>
  METHODS.map((method) => ({ entry, method, answer: entry.m[method] as RecordedAnswer })),
);
const key = (method: string, target: string) => `${method} ${target}`;

/* ------------------------------------------------------------------ what portcullis did */

type ProxyView =
  | {
      readonly kind: "refused";
      readonly status: number;
      readonly why: string;
      /** Node's HTTP parser refused it (clientError): the gate never saw it. */
      readonly parser?: boolean;
    }
  | { readonly kind: "no-route" }
  | {
      readonly kind: "routed";
      readonly operation: string;
      readonly decision: "allow" | "deny";
      readonly status: number;
    };

/** Decoded bytes of a path part (lenient: null when an escape is malformed). */
function decodeBytes(path: string): number[] | null {
  const out: number[] = [];
  for (let i = 0; i < path.length; i++) {
    if (path[i] !== "%") {
      out.push(path.charCodeAt(i));
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
    out.push(Number.parseInt(hex, 16));
    i += 2;
  }
  return out;
}

/**
 * The documented reason portcullis may refuse a request dockerd would route (or call page not
 * found), judged from the target itself, or null when a refusal would be a bug.
 */
function deliberateRefusal(target: string, view: ProxyView): string | null {
  if (view.kind !== "refused") return null;
  if (view.status === 431) return "head larger than the limit";
  if (view.parser) return "rejected by Node's HTTP parser";
  if (!target.startsWith("/")) return "not origin-form";
  const path = target.split("?")[0] as string;
  const bytes = decodeBytes(path);
  if (bytes === null) return null; // dockerd rejects malformed escapes too: a refusal is expected anyway
  if (bytes.some((b) => b < 0x20 || b === 0x7f)) return "control byte in the decoded path";
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return "invalid UTF-8 in the decoded path";
  }
  return null;
}

const routeByOperation = new Map(ROUTES.map((r) => [r.operation, r]));

/** A route portcullis knows that dockerd 20.10 does not serve (it answers page not found). */
function newerThan2010(operation: string, target: string): boolean {
  const route = routeByOperation.get(operation);
  if (route !== undefined && !inDockerd2010(route)) return true;
  // 20.10 serves /debug/* unversioned only; newer daemons serve the versioned form too
  return operation.startsWith("Debug") && /^\/v[0-9.]+\//.test(target);
}

interface Expected {
  readonly class: string;
  readonly operations: readonly string[];
  readonly name?: string;
  readonly from: "daemon" | "model";
}

function expectedFor(job: Job, model: OracleResult): Expected {
  if (isAsked(job.answer)) {
    const a = job.answer;
    const ops = a.ops && a.ops.length > 0 ? a.ops : model.class === "handler" ? [model.operation] : [];
    return { class: a.c, operations: ops, ...(a.name !== undefined ? { name: a.name } : {}), from: "daemon" };
  }
  return {
    class: model.class,
    operations: model.class === "handler" ? [model.operation] : [],
    from: "model",
  };
}

/** Checks one entry; returns a failure description or null. Counts outcomes in `tally`. */
function judge(job: Job, view: ProxyView, tally: Map<string, number>): string | null {
  const target = job.entry.t;
  const model = oracle.route(job.method, target);
  const exp = expectedFor(job, model);
  const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
  const where = `${job.method} ${JSON.stringify(target.slice(0, 200))}: dockerd (${exp.from}) ${exp.class} ${exp.operations.join("|")}, portcullis ${JSON.stringify(view)}`;
  switch (exp.class) {
    case "redirect":
    case "bad-request":
    case "net-http":
      if (view.kind === "refused" && view.status >= 400 && view.status < 500) {
        count(`${exp.class} -> refused`);
        return null;
      }
      return `${where}: must be refused`;
    case "not-found-route":
      if (view.kind === "no-route") {
        count("not-found-route -> no route");
        return null;
      }
      if (view.kind === "routed" && newerThan2010(view.operation, target)) {
        count(`not-found-route -> ${view.operation} (newer daemons)`);
        return null;
      }
      if (deliberateRefusal(target, view)) {
        count(`not-found-route -> refused: ${deliberateRefusal(target, view)}`);
        return null;
      }
      return `${where}: must be 404 no route`;
    case "handler": {
      if (view.kind === "refused") {
        const why = deliberateRefusal(target, view);
        if (why === null) return `${where}: refused without a documented reason`;
        count(`handler -> refused: ${why}`);
        return null;
      }
      if (view.kind !== "routed") return `${where}: dockerd reaches a handler`;
      if (!exp.operations.includes(view.operation)) return `${where}: wrong operation`;
      // the variable portcullis captured is the name the handler printed
      if (exp.name !== undefined) {
        const ct = canonicalTarget(target);
        const m = ct.ok ? matchRoute(index, job.method, ct.routePath) : null;
        const captured = m ? Object.values(m.params)[0] : undefined;
        if (captured !== exp.name)
          return `${where}: captured ${JSON.stringify(captured)}, handler saw ${JSON.stringify(exp.name)}`;
      }
      count("handler -> same operation");
      return null;
    }
    default:
      return `${where}: unknown class`;
  }
}

/** Sends every job through a proxy and reads its classification from its answer and log. */
async function classifyThroughProxy(proxy: TestProxy, list: readonly Job[]): Promise<Map<string, ProxyView>> {
  const answers = await mapLimit(list, 32, (job) =>
    exchangeCorpusRequest({ port: proxy.port }, job.method, job.entry.t),
  );
  // allow records are written when the exchange ends: give them a moment
  await new Promise((r) => setTimeout(r, 100));
  const byKey = new Map<string, Record<string, unknown>>();
  for (const l of proxy.logs)
    if (typeof l.method === "string" && typeof l.target === "string") byKey.set(key(l.method, l.target), l);
  const views = new Map<string, ProxyView>();
  list.forEach((job, i) => {
    const ex = answers[i];
    const res = ex?.finals[0];
    const rec = byKey.get(key(job.method, job.entry.t));
    let view: ProxyView;
    if (rec === undefined) {
      // never reached the gate: Node's parser (clientError) answered
      view = {
        kind: "refused",
        status: res?.status ?? 0,
        why: res ? messageOf(res) : `no answer (${ex?.socketError ?? "?"})`,
        parser: true,
      };
    } else if (rec.reason === "bad-target") {
      view = { kind: "refused", status: Number(rec.status), why: String(rec.msg) };
    } else if (rec.reason === "no-route") {
      view = { kind: "no-route" };
    } else {
      view = {
        kind: "routed",
        operation: String(rec.operation),
        decision: rec.decision === "allow" ? "allow" : "deny",
        status: res?.status ?? 0,
      };
    }
    views.set(key(job.method, job.entry.t), view);
  });
  return views;
}

function summary(tally: Map<string, number>): string {
  return [...tally.entries()]
    .sort()
    .map(([k, v]) => `#   ${String(v).padStart(5)}  ${k}`)
    .join("\n");
}

/* ------------------------------------------------------------------ offline */

describe("routing corpus", () => {
  it("holds every hand-written target and every route of the table", () => {
    const inFile = new Set(corpus.entries.map((e) => e.t));
    const rerecord = "re-record with `npm run build && node scripts/record-routing-corpus.mjs`";
    const hand = handWrittenTargets().map((t) => t.target);
    assert.deepEqual(
      hand.filter((t) => !inFile.has(t)),
      [],
      `hand-written targets missing: ${rerecord}`,
    );
    const routes = routeTargets(ROUTES).map((t) => t.target);
    assert.deepEqual(
      routes.filter((t) => !inFile.has(t)),
      [],
      `routes not in the corpus: ${rerecord}`,
    );
    // the generated part is data once recorded (it was drawn from the route table of its day)
    assert.ok(corpus.counts.generated >= 400 && corpus.counts.hand >= 200, JSON.stringify(corpus.counts));
    assert.deepEqual(corpus.methods, [...METHODS]);
    for (const j of jobs) assert.ok(!("error" in j.answer), `${j.method} ${j.entry.t}: recording error`);
  });

  it("the independent router model agrees with every answer dockerd gave", () => {
    const failures: string[] = [];
    for (const job of jobs) {
      if (!isAsked(job.answer)) continue;
      const a = job.answer;
      const m = oracle.route(job.method, job.entry.t);
      let ok = m.class === a.c;
      if (ok && m.class === "handler" && a.ops && a.ops.length > 0) ok = a.ops.includes(m.operation);
      if (ok && m.class === "handler" && a.v !== undefined) ok = m.versionRejected === a.v;
      if (!ok)
        failures.push(
          `${job.method} ${JSON.stringify(job.entry.t.slice(0, 120))}: dockerd ${a.s} ${a.c} ${a.ops?.join("|") ?? ""}, model ${JSON.stringify(m)}`,
        );
    }
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} disagreements`);
  });

  describe("portcullis classifies every entry as dockerd does", () => {
    let stubDir = "";
    let stub: http.Server | undefined;
    let proxy: TestProxy | undefined;
    before(async () => {
      // A stub daemon: portcullis must decide without it, whatever it answers.
      stubDir = mkdtempSync(join(tmpdir(), "pcstub-"));
      stub = http.createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": "4" });
        res.end("stub");
      });
      await new Promise<void>((r) => stub?.listen(join(stubDir, "d.sock"), () => r()));
      proxy = await startProxy(join(stubDir, "d.sock"), {});
    });
    after(async () => {
      await proxy?.stop();
      await new Promise<void>((r) => (stub ? stub.close(() => r()) : r()));
      stub?.closeAllConnections();
      rmSync(stubDir, { recursive: true, force: true });
    });

    it("redirect/bad request -> 400, page not found -> 404, handler -> its operation", {
      timeout: 60_000,
    }, async () => {
      assert.ok(proxy);
      const views = await classifyThroughProxy(proxy, jobs);
      const tally = new Map<string, number>();
      const failures: string[] = [];
      for (const job of jobs) {
        const view = views.get(key(job.method, job.entry.t));
        assert.ok(view);
        const f = judge(job, view, tally);
        if (f) failures.push(f);
      }
      console.log(
        `# ${jobs.length} requests (${corpus.counts.asked} asked of dockerd, ${corpus.counts.notAsked} from the model):\n${summary(tally)}`,
      );
      assert.deepEqual(failures.slice(0, 15), [], `${failures.length} differences`);
    });
  });
});

/* ------------------------------------------------------------------ live */

const TOGGLE_SETS: readonly Record<string, string>[] = [
  {},
  { CONTAINERS: "1" },
  { ALLOW_START: "1", ALLOW_STOP: "1", ALLOW_RESTARTS: "1", IMAGES: "1" },
  {
    CONTAINERS: "1",
    IMAGES: "1",
    NETWORKS: "1",
    VOLUMES: "1",
    EXEC: "1",
    PLUGINS: "1",
    INFO: "1",
    SYSTEM: "1",
    POST: "1",
  },
];

describeWithDockerd(
  "routing differential against a live dockerd",
  { swarm: false, image: false },
  (engine) => {
    const asked = jobs.filter((j) => isAsked(j.answer));

    it("(a) dockerd still answers as recorded", { timeout: 60_000 }, async () => {
      const drift: string[] = [];
      await mapLimit(asked, 16, async (job) => {
        const raw = await ask({ path: engine.socketPath }, job.method, job.entry.t);
        const rec = job.answer as Asked;
        if ("error" in raw) {
          drift.push(`${job.method} ${JSON.stringify(job.entry.t.slice(0, 120))}: ${raw.error}`);
          return;
        }
        const now = toAnswer(job.method, raw);
        const was = fingerprint({ status: rec.s, class: rec.c, body: rec.b });
        const is = fingerprint({ status: now.status, class: now.class, body: now.body });
        if (was !== is)
          drift.push(
            `${job.method} ${JSON.stringify(job.entry.t.slice(0, 120))}: recorded ${was}, now ${is}`,
          );
      });
      assert.deepEqual(
        drift.slice(0, 15),
        [],
        `${drift.length} of ${asked.length} answers changed: re-record?`,
      );
    });

    describe("(c) through the tap: the daemon receives exactly what portcullis allowed", () => {
      let tap: Tap | undefined;
      before(async () => {
        tap = await startTap(engine.socketPath);
      });
      after(async () => {
        await tap?.stop();
      });

      for (const env of TOGGLE_SETS) {
        it(`env ${JSON.stringify(env)}`, { timeout: 60_000 }, async () => {
          assert.ok(tap);
          tap.reset();
          const proxy = await startProxy(tap.socketPath, env);
          try {
            const views = await classifyThroughProxy(proxy, asked);
            // allow records come when the exchange ends; streams end when the client went away
            const deadline = Date.now() + 5_000;
            while (Date.now() < deadline && seenByDaemon(tap).length !== allowedByProxy(proxy.logs).length) {
              await new Promise((r) => setTimeout(r, 50));
            }
            await tap.quiet(100, 3_000);
            assert.deepEqual(tap.errors(), []);
            const seen = seenByDaemon(tap).sort();
            const allowed = allowedByProxy(proxy.logs).sort();
            assert.deepEqual(seen, allowed, "daemon saw ≠ portcullis allowed");
            // each allowed request got dockerd's own answer; each denied one never reached it
            const wrong: string[] = [];
            const seenSet = new Set(seen);
            let allowedCount = 0;
            for (const job of asked) {
              const view = views.get(key(job.method, job.entry.t));
              const rec = job.answer as Asked;
              if (view?.kind === "routed" && view.decision === "allow") {
                allowedCount++;
                if (view.status !== rec.s && view.status !== 0)
                  wrong.push(
                    `${job.method} ${job.entry.t.slice(0, 120)}: dockerd says ${rec.s}, through portcullis ${view.status}`,
                  );
              } else if (seenSet.has(key(job.method, job.entry.t))) {
                wrong.push(`${job.method} ${job.entry.t.slice(0, 120)}: denied but reached the daemon`);
              }
            }
            assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong`);
            console.log(
              `# env ${JSON.stringify(env)}: ${asked.length} requests, ${allowedCount} allowed and forwarded, ${asked.length - allowedCount} refused`,
            );
          } finally {
            await proxy.stop();
          }
        });
      }
    });
  },
);
