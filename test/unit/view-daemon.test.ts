/**
 * The view against a fake daemon (an HTTP server on a unix socket): pre-checks ask the daemon every
 * time (no negative cache), lists are filtered, and the events filter decides event by event, in
 * order, remembering objects for the life of one stream.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { EventFilter, EventVisibility, filterList } from "../../src/proxy/response-filter.js";
import { createUpstream, type Upstream } from "../../src/proxy/upstream.js";
import { compileView } from "../../src/proxy/view.js";
import { Resolver } from "../../src/proxy/visibility.js";

const view = compileView({ visibility: { labels: { team: "a" }, names: ["shared-*"] } });
assert.ok(view);

/** Path -> JSON answer; a missing path is a 404 like dockerd's. Tests change it as they go. */
const objects = new Map<string, unknown>();
const asked: string[] = [];

describe("the view against a fake daemon", () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-view-"));
  const socketPath = join(dir, "d.sock");
  let server: http.Server;
  let upstream: Upstream;
  before(async () => {
    server = http.createServer((req, res) => {
      const path = (req.url ?? "").replace(/^\/v[0-9.]+/, "");
      asked.push(path);
      const found = objects.get(path);
      const body = JSON.stringify(found === undefined ? { message: `No such thing: ${path}` } : found);
      res.writeHead(found === undefined ? 404 : 200, {
        "Content-Type": "application/json",
        "Api-Version": "1.41",
      });
      res.end(`${body}\n`);
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    upstream = createUpstream({ kind: "unix", socketPath });
  });
  after(async () => {
    await upstream.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("resolves every time: a name that becomes visible is seen at once (no negative cache)", async () => {
    const resolver = new Resolver(upstream, view);
    objects.set("/containers/web/json", { Id: "c1", Name: "/web", Config: { Labels: { team: "b" } } });
    const first = await resolver.lookup("container", "web");
    assert.deepEqual(first.found && [first.id, first.visible], ["c1", false]);
    objects.set("/containers/web/json", { Id: "c2", Name: "/web", Config: { Labels: { team: "a" } } });
    const second = await resolver.lookup("container", "web");
    assert.deepEqual(second.found && [second.id, second.visible], ["c2", true]);
    objects.delete("/containers/web/json");
    const gone = await resolver.lookup("container", "web");
    assert.equal(gone.found, false);
    assert.equal(!gone.found && gone.answer.status, 404);
  });

  it("an exec is seen through its container, a task through its service", async () => {
    const resolver = new Resolver(upstream, view);
    objects.set("/exec/e1/json", { ID: "e1", ContainerID: "c9" });
    objects.set("/containers/c9/json", { Id: "c9", Name: "/shared-x", Config: { Labels: null } });
    const exec = await resolver.lookup("exec", "e1");
    assert.deepEqual(exec.found && [exec.id, exec.visible], ["e1", true]);
    objects.set("/tasks/t1", { ID: "t1", ServiceID: "s1" });
    objects.set("/services/s1", { ID: "s1", Spec: { Name: "svc", Labels: { team: "b" } } });
    const task = await resolver.lookup("task", "t1");
    assert.deepEqual(task.found && [task.id, task.visible], ["t1", false]);
  });

  it("lists: containers, volumes, tasks (by their service)", async () => {
    const containers = await filterList(
      view,
      "container",
      [
        { Id: "1", Names: ["/a"], Labels: { team: "a" } },
        { Id: "2", Names: ["/b"], Labels: { team: "b" } },
        { Id: "3", Names: ["/shared-c"], Labels: {} },
        { Id: "4", Names: ["/x/shared-c"], Labels: {} },
      ],
      upstream,
    );
    assert.deepEqual(
      (containers as { Id: string }[]).map((c) => c.Id),
      ["1", "3"],
    );
    const volumes = await filterList(
      view,
      "volume",
      {
        Volumes: [
          { Name: "shared-v", Labels: null },
          { Name: "v", Labels: { team: "b" } },
        ],
        Warnings: null,
      },
      upstream,
    );
    assert.deepEqual(volumes, { Volumes: [{ Name: "shared-v", Labels: null }], Warnings: null });
    objects.set("/services", [
      { ID: "s1", Spec: { Name: "one", Labels: { team: "a" } } },
      { ID: "s2", Spec: { Name: "two", Labels: { team: "b" } } },
    ]);
    const tasks = await filterList(
      view,
      "task",
      [
        { ID: "t1", ServiceID: "s1" },
        { ID: "t2", ServiceID: "s2" },
        { ID: "t3", ServiceID: "gone" },
      ],
      upstream,
    );
    assert.deepEqual(
      (tasks as { ID: string }[]).map((t) => t.ID),
      ["t1"],
    );
  });

  it("events: containers by their attributes; other objects looked up once per stream", async () => {
    const events = new EventVisibility(view, upstream);
    const ev = (Type: string, Action: string, ID: string, Attributes: Record<string, string> = {}) => ({
      Type,
      Action,
      Actor: { ID, Attributes },
    });
    assert.equal(await events.decide(ev("container", "start", "c1", { name: "web", team: "a" })), true);
    assert.equal(await events.decide(ev("container", "start", "c2", { name: "db", team: "b" })), false);
    assert.equal(await events.decide(ev("container", "start", "c3", { name: "shared-x" })), true);

    objects.set("/volumes/va", { Name: "va", Labels: { team: "a" } });
    objects.set("/volumes/vb", { Name: "vb", Labels: { team: "b" } });
    asked.length = 0;
    assert.equal(await events.decide(ev("volume", "create", "va")), true);
    assert.equal(await events.decide(ev("volume", "create", "vb")), false);
    assert.equal(await events.decide(ev("volume", "mount", "va", { container: "c1" })), true);
    assert.equal(
      await events.decide(ev("volume", "mount", "va", { container: "c2" })),
      false,
      "hidden container",
    );
    assert.deepEqual(
      asked,
      ["/volumes/va", "/volumes/vb"],
      "each looked up once; containers known from their events",
    );
    objects.delete("/volumes/va");
    objects.delete("/volumes/vb");
    assert.equal(
      await events.decide(ev("volume", "destroy", "va")),
      true,
      "seen visible earlier in this stream",
    );
    assert.equal(await events.decide(ev("volume", "destroy", "vb")), false);
    assert.equal(
      await events.decide(ev("volume", "destroy", "never-seen")),
      false,
      "cannot be looked up: hidden",
    );
    const fresh = new EventVisibility(view, upstream);
    assert.equal(await fresh.decide(ev("volume", "destroy", "va")), false, "another stream did not see it");

    assert.equal(await events.decide(ev("daemon", "reload", "d")), true, "not governed");
    assert.equal(await events.decide(ev("builder", "prune", "x")), false, "unknown types are hidden");
    assert.equal(await events.decide({ status: "start", id: "c1" }), false, "no Type: hidden");
  });

  it("services are looked up again on update (their labels can change)", async () => {
    const events = new EventVisibility(view, upstream);
    objects.set("/services/s5", { ID: "s5", Spec: { Name: "five", Labels: { team: "b" } } });
    assert.equal(await events.decide({ Type: "service", Action: "create", Actor: { ID: "s5" } }), false);
    objects.set("/services/s5", { ID: "s5", Spec: { Name: "five", Labels: { team: "a" } } });
    assert.equal(await events.decide({ Type: "service", Action: "update", Actor: { ID: "s5" } }), true);
  });
});

describe("EventFilter", () => {
  const decideBy = (keep: (e: { n: number }) => boolean, delayMs = 0) => ({
    decide: async (e: unknown) => {
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      return keep(e as { n: number });
    },
  });
  const run = async (chunks: (string | Buffer)[], filter: EventFilter) => {
    const out: Buffer[] = [];
    const source = Readable.from(chunks.map((c) => Buffer.from(c)));
    for await (const chunk of source.pipe(filter)) out.push(chunk as Buffer);
    return Buffer.concat(out).toString();
  };

  it("keeps records whole and in order across chunk boundaries, bytes unchanged", async () => {
    const text = await run(
      ['{"n":1}\n{"n"', ':2}\n{"n":3}', '\n\u001e{"n":4}\n', 'not json\n{"n":6}'],
      new EventFilter(decideBy((e) => e.n !== 2, 1)),
    );
    assert.equal(text, '{"n":1}\n{"n":3}\n\u001e{"n":4}\n{"n":6}');
  });

  it("fails on a record longer than its bound", async () => {
    await assert.rejects(
      run(
        ["x".repeat(100)],
        new EventFilter(
          decideBy(() => true),
          10,
        ),
      ),
      /longer than 10 bytes/,
    );
  });

  it("applies backpressure: nothing is read ahead while a record is being decided", async () => {
    let decided = 0;
    const filter = new EventFilter({
      decide: async () => {
        decided++;
        await new Promise((r) => setTimeout(r, 1));
        return true;
      },
    });
    const writes: boolean[] = [];
    for (let i = 0; i < 3000; i++) writes.push(filter.write(`{"n":"${String(i).padStart(4, "0")}"}\n`));
    assert.equal(decided, 1, "one record at a time");
    assert.ok(writes.includes(false), "the writer (the daemon's stream) is told to wait");
    let out = 0;
    filter.on("data", (c: Buffer) => {
      out += c.length;
    });
    filter.end();
    await new Promise((r) => filter.on("end", r));
    assert.equal(decided, 3000);
    assert.equal(out, 3000 * 13);
  });
});
