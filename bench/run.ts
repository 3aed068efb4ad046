/**
 * `npm run bench`: portcullis measured side by side with direct dockerd and HAProxy (Tecnativa config).
 *
 * Starts a private dockerd (unix socket + loopback TCP for the direct baseline), seeds it, starts
 * HAProxy and portcullis (the real CLI, its own process) with the same toggles, runs every scenario
 * against the three targets interleaved (direct, HAProxy, portcullis, direct, ...), prints medians
 * and ratios and writes bench/results/latest.json (and latest.md). Everything it starts is stopped,
 * also on failure and on Ctrl-C. `--smoke`: tiny counts, a few seconds of load, no thresholds.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { dockerdMissing, type PrivateDockerd, startDockerd } from "../test/helpers/dockerd.js";
import { DockerApi } from "./lib/api.js";
import { Client } from "./lib/client.js";
import { type Ctx, FULL, type Sizes, SMOKE } from "./lib/context.js";
import { backgroundBusy, describeMachine, loadAverage, machine } from "./lib/machine.js";
import { formatProfile, type ProfileSummary, summarizeDir } from "./lib/profile.js";
import { evaluateTargets, markdownTable, Results, targetsTable } from "./lib/report.js";
import { seed } from "./lib/seed.js";
import {
  directTarget,
  killAllSync,
  type ProxyOptions,
  startHaproxy,
  startPortcullis,
  type Target,
} from "./lib/targets.js";
import { REPO_ROOT } from "./lib/util.js";
import { bulkStreaming } from "./scenarios/bulk.js";
import { eventFanout } from "./scenarios/events.js";
import { memory, startup } from "./scenarios/footprint.js";
import { hijackStreams } from "./scenarios/hijack.js";
import { connectionChurn, smallRequests } from "./scenarios/small.js";

const SCENARIOS: readonly [string, (ctx: Ctx) => Promise<void>][] = [
  ["startup", startup],
  ["memory", memory],
  ["small", smallRequests],
  ["churn", connectionChurn],
  ["bulk", bulkStreaming],
  ["hijack", hijackStreams],
  ["events", eventFanout],
];

const HELP = `node dist/bench/run.js [options]    (npm run bench -- [options])

  --smoke            tiny counts, ~1 s per measurement, no thresholds (CI: the bench cannot rot)
  --only LIST        comma-separated scenarios: ${SCENARIOS.map(([n]) => n).join(",")}
  --rounds N         rounds of (direct, HAProxy, portcullis) per measurement (default ${FULL.rounds})
  --duration S       seconds per wrk sample (default ${FULL.durationS})
  --profile          run portcullis under node --cpu-prof; summarize the profiles at the end
  --no-swarm         do not make the daemon a swarm manager (no services seeded)
  --log-level L      LOG_LEVEL for both proxies (default warning: neither logs allowed requests)
  --hold             set everything up, print the targets, then wait (at most an hour) for Ctrl-C
  --out FILE         JSON results (default bench/results/latest.json; with --smoke a temp file)
  --help

  PORTCULLIS_BENCH_CLI=/path/to/main.js measures another portcullis build (before/after a change);
  node dist/bench/ab.js A.js B.js compares two builds' start-up and idle RSS without a daemon.
`;

/** The toggles both proxies get: what the scenarios need, nothing more. */
const TOGGLES = { CONTAINERS: "1", IMAGES: "1", EXEC: "1", EVENTS: "1", PING: "1", VERSION: "1", POST: "1" };

const started = performance.now();
const log = (msg: string) => {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stdout.write(`[${s}s] ${msg}\n`);
};

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      smoke: { type: "boolean" },
      only: { type: "string" },
      rounds: { type: "string" },
      duration: { type: "string" },
      profile: { type: "boolean" },
      "no-swarm": { type: "boolean" },
      "log-level": { type: "string" },
      out: { type: "string" },
      hold: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const smoke = values.smoke === true;
  const sizes: Sizes = { ...(smoke ? SMOKE : FULL) };
  if (values.rounds) sizes.rounds = Math.max(1, Math.min(20, Number(values.rounds)));
  if (values.duration) sizes.durationS = Math.max(1, Math.min(60, Number(values.duration)));
  const only = values.only ? new Set(values.only.split(",").map((s) => s.trim())) : undefined;
  for (const o of only ?? []) if (!SCENARIOS.some(([n]) => n === o)) throw new Error(`unknown scenario ${o}`);
  const wantSwarm = !smoke && values["no-swarm"] !== true;
  const logLevel = values["log-level"] ?? "warning";

  const missing = [
    dockerdMissing(),
    ...["haproxy", "wrk"].map((c) => (onPath(c) ? undefined : `\`${c}\` on PATH`)),
  ]
    .filter(Boolean)
    .join(", ");
  if (missing) {
    process.stderr.write(`bench: cannot run here, missing: ${missing}\n`);
    return 3;
  }

  const m = machine();
  log(`machine: ${describeMachine(m).replace("\n", "\n           ")}`);
  const background = {
    busyPctBefore: await backgroundBusy(smoke ? 500 : 2_000),
    loadBefore: loadAverage(),
    loadAfter: "",
  };
  log(
    `background CPU use before start: ${background.busyPctBefore}% of all CPUs (load average ${background.loadBefore})`,
  );
  if (background.busyPctBefore > 10)
    log("  ! the machine is not idle: other work competes with every target; expect noisy numbers");
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-"));
  const out =
    values.out ?? (smoke ? join(dir, "smoke.json") : join(REPO_ROOT, "bench", "results", "latest.json"));
  const profileDir = join(dir, "profiles");
  const nodeArgs = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  // a hard bound on the whole run; the exit hooks stop everything
  const budgetMs = smoke ? 240_000 : values.hold ? 60 * 60_000 : 30 * 60_000;
  const budget = setTimeout(() => {
    process.stderr.write(`bench: gave up after ${budgetMs / 1000} s\n`);
    process.exit(1);
  }, budgetMs);
  budget.unref();

  let engine: PrivateDockerd | undefined;
  let client: Client | undefined;
  const proxies: Target[] = [];
  const cleanupSync = () => {
    client?.killSync();
    killAllSync();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", cleanupSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping everything\n`);
      process.exit(130); // 'exit' hooks: ours above, the dockerd helper's teardown
    });
  }

  const results = new Results();
  let profiles: ProfileSummary[] = [];
  try {
    log(`starting a private dockerd (swarm: ${wantSwarm}, tcp listener for the direct baseline)`);
    engine = await startDockerd({ swarm: wantSwarm, tcp: true, image: true, startTimeoutMs: 60_000 });
    log(
      `dockerd up (${engine.storageDriver}; daemon ${engine.timings.daemon} ms, swarm ${engine.timings.swarm ?? "-"} ms)`,
    );
    const api = new DockerApi(engine.socketPath);
    const s = await seed(
      api,
      {
        image: engine.image,
        containers: smoke ? 5 : 50,
        running: smoke ? 1 : 5,
        networks: smoke ? 1 : 3,
        services: smoke ? 0 : 3,
        eventContainers: smoke ? 1 : 5,
        bigMiB: smoke ? 4 : 200,
        dir,
      },
      wantSwarm,
    );
    log(
      `seeded in ${s.ms} ms: ${s.containerIds.length} labelled containers, ${s.eventIds.length} event containers, ` +
        `image ${s.bigImage} (${(s.bigTarBytes / 1048576).toFixed(0)} MiB as a tar)`,
    );

    const proxyOptions: ProxyOptions = { socketPath: engine.socketPath, toggles: TOGGLES, logLevel, dir };
    const haproxy = await startHaproxy(proxyOptions);
    proxies.push(haproxy);
    const portcullis = await startPortcullis(proxyOptions, "portcullis", nodeArgs);
    proxies.push(portcullis);
    const targets: Target[] = [directTarget(engine.tcpAddress as string), haproxy, portcullis];
    log(
      `targets: direct ${targets[0]?.port}, haproxy ${haproxy.port} (pid ${haproxy.pids().join("+")}), portcullis ${portcullis.port} (pid ${portcullis.pids()})`,
    );
    client = new Client();
    if (values.hold) {
      log(
        `holding; seeded container ${s.containerIds.at(-1)}, running ${s.runningId}; dockerd ${engine.socketPath}; Ctrl-C stops everything`,
      );
      await new Promise(() => {});
    }
    const ctx: Ctx = {
      sizes,
      smoke,
      targets,
      engine,
      api,
      client,
      seed: s,
      dir,
      proxyOptions,
      nodeArgs,
      results,
      log,
    };

    for (const [name, run] of SCENARIOS) {
      if (only && !only.has(name)) continue;
      log(`scenario ${name}`);
      try {
        await run(ctx);
      } catch (error) {
        const msg = (error as Error).message;
        results.errors.push({ scenario: name, error: msg });
        log(`  scenario ${name} FAILED: ${msg}`);
      }
      for (const p of proxies) {
        if (p.pids().length === 0) throw new Error(`${p.name} is no longer running (log: ${p.logPath})`);
      }
    }
  } finally {
    log("stopping client, proxies and dockerd");
    await client?.close();
    for (const p of proxies) await p.stop();
    await engine?.stop();
    if (values.profile) profiles = summarizeDir(profileDir);
  }

  background.loadAfter = loadAverage();
  const summaries = results.summaries();
  const checks = evaluateTargets(results);
  const table = markdownTable(summaries);
  const targetTable = targetsTable(checks);
  process.stdout.write(
    `\n${describeMachine(m)}\nmedians of ${sizes.rounds} round(s); ratios = portcullis / other\n\n${table}\n\n`,
  );
  if (!smoke) process.stdout.write(`${targetTable}\n\n`);
  for (const p of profiles) process.stdout.write(`${formatProfile(p)}\n\n`);
  for (const e of results.errors) process.stdout.write(`ERROR in ${e.scenario}: ${e.error}\n`);

  const json = {
    date: new Date().toISOString(),
    mode: smoke ? "smoke" : "full",
    durationS: Math.round((performance.now() - started) / 1000),
    machine: m,
    background,
    sizes,
    toggles: TOGGLES,
    logLevel,
    scenarios: only ? [...only] : SCENARIOS.map(([n]) => n),
    metrics: summaries,
    targets: smoke ? [] : checks,
    errors: results.errors,
    profiles,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  if (!smoke && !values.out && !only) {
    writeFileSync(
      join(dirname(out), "latest.md"),
      `<!-- generated by npm run bench on ${json.date} -->\n${describeMachine(m)}\n` +
        `background CPU use before start: ${background.busyPctBefore}% (load average ${background.loadBefore}); ` +
        `run took ${json.durationS} s\n\nmedians of ${sizes.rounds} rounds\n\n${table}\n\n${targetTable}\n`,
    );
  }
  log(`results: ${out}`);
  return results.errors.length > 0 ? 1 : 0;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => {
    try {
      return d !== "" && statSync(join(d, cmd)).isFile();
    } catch {
      return false;
    }
  });
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
