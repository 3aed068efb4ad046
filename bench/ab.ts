/**
 * A/B of two portcullis builds' footprint, interleaved (A B A B ...), against a stub daemon on a
 * unix socket (so no dockerd is needed): start-up (spawn to first accepted connection) and RSS
 * after one /_ping. For before/after numbers of a change that touches start-up or memory:
 *
 *   cp -r dist /tmp/before            # before the change
 *   npm run build                     # after
 *   node dist/bench/ab.js /tmp/before/src/cli/main.js dist/src/cli/main.js [rounds]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, median, rssBytes, sleep, waitForAccept } from "./lib/util.js";

async function main(): Promise<void> {
  const [a, b, roundsArg] = process.argv.slice(2);
  if (!a || !b) {
    process.stderr.write("usage: node dist/bench/ab.js <A main.js> <B main.js> [rounds=11]\n");
    process.exit(2);
  }
  const rounds = Math.max(1, Math.min(50, Number(roundsArg ?? 11)));
  const sock = join(tmpdir(), `portcullis-ab-${process.pid}.sock`);
  rmSync(sock, { force: true });
  const stub = http.createServer((_req, res) => {
    res.setHeader("Api-Version", "1.41");
    res.setHeader("Content-Type", "text/plain; charset=utf-8");
    res.end("OK");
  });
  await new Promise<void>((r) => stub.listen(sock, r));
  const results = new Map<string, { start: number[]; rss: number[] }>([
    [a, { start: [], rss: [] }],
    [b, { start: [], rss: [] }],
  ]);
  let child: ChildProcess | undefined;
  process.once("exit", () => child?.kill("SIGKILL"));
  try {
    for (let round = 0; round < rounds; round++) {
      for (const main of [a, b]) {
        const port = await freePort();
        const t0 = performance.now();
        child = spawn(process.execPath, [main], {
          stdio: "ignore",
          env: {
            PATH: process.env.PATH ?? "",
            CONTAINERS: "1",
            SOCKET_PATH: sock,
            PORTCULLIS_LISTEN: `tcp://127.0.0.1:${port}`,
            LOG_LEVEL: "warning",
          },
        });
        if (!(await waitForAccept("127.0.0.1", port, 10_000))) throw new Error(`${main} did not start`);
        const startMs = performance.now() - t0;
        await new Promise<void>((resolve, reject) => {
          http
            .get({ host: "127.0.0.1", port, path: "/_ping", agent: false, timeout: 5_000 }, (res) => {
              res.resume();
              res.on("end", () =>
                res.statusCode === 200 ? resolve() : reject(new Error(`/_ping ${res.statusCode}`)),
              );
            })
            .on("error", reject);
        });
        await sleep(700);
        const r = results.get(main) as { start: number[]; rss: number[] };
        r.start.push(startMs);
        r.rss.push(rssBytes(child.pid as number) / 1048576);
        child.kill("SIGKILL");
        await new Promise((r) => child?.once("exit", r));
        child = undefined;
      }
    }
  } finally {
    stub.close();
    rmSync(sock, { force: true });
  }
  for (const [main, r] of results) {
    process.stdout.write(
      `${main}: start-up median ${median(r.start).toFixed(0)} ms (best ${Math.min(...r.start).toFixed(0)}), ` +
        `idle RSS median ${median(r.rss).toFixed(1)} MB (best ${Math.min(...r.rss).toFixed(1)}), ${rounds} runs\n`,
    );
  }
}

main().catch((e: Error) => {
  process.stderr.write(`ab: ${e.message}\n`);
  process.exit(1);
});
