/**
 * The bench's client process (forked by client.ts): bulk transfers, event subscribers, hijacked
 * streams and idle keep-alive connections run here, in their own process, so the load generator
 * never shares the event loop (or the CPU accounting) of the bench orchestrator, and the same
 * client is used for all three targets. Jobs arrive over IPC; every wait is bounded.
 */
import { randomFillSync } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import http from "node:http";
import net from "node:net";

export type Job =
  | { kind: "download"; host: string; port: number; path: string; timeoutMs: number }
  | {
      kind: "upload";
      host: string;
      port: number;
      path: string;
      file: string;
      contentType: string;
      timeoutMs: number;
    }
  | {
      kind: "events-open";
      host: string;
      port: number;
      path: string;
      n: number;
      reference: { host: string; port: number };
      timeoutMs: number;
    }
  | { kind: "events-wait"; expected: number; timeoutMs: number }
  | { kind: "events-close" }
  | {
      kind: "hijack";
      host: string;
      port: number;
      /** The request head and body, sent as is. */
      request: string;
      bytes: number;
      timeoutMs: number;
    }
  | { kind: "idle-open"; host: string; port: number; n: number; path: string; timeoutMs: number }
  | { kind: "idle-close" }
  | { kind: "exit" };

/* ------------------------------------------------------------------ bulk */

function download(j: Extract<Job, { kind: "download" }>) {
  return new Promise<{ status: number; bytes: number; ms: number }>((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get({ host: j.host, port: j.port, path: j.path, agent: false }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, ms: performance.now() - t0 }));
      res.on("error", reject);
    });
    req.setTimeout(j.timeoutMs, () => req.destroy(new Error(`download timed out after ${j.timeoutMs} ms`)));
    req.on("error", reject);
  });
}

function upload(j: Extract<Job, { kind: "upload" }>) {
  return new Promise<{ status: number; bytes: number; ms: number; body: string }>((resolve, reject) => {
    const size = statSync(j.file).size;
    const t0 = performance.now();
    const req = http.request(
      {
        host: j.host,
        port: j.port,
        path: j.path,
        method: "POST",
        agent: false,
        headers: { "content-type": j.contentType, "content-length": String(size) },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          if (body.length < 4096) body += c;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            bytes: size,
            ms: performance.now() - t0,
            body: body.trim(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.setTimeout(j.timeoutMs, () => req.destroy(new Error(`upload timed out after ${j.timeoutMs} ms`)));
    req.on("error", reject);
    createReadStream(j.file, { highWaterMark: 1024 * 1024 }).pipe(req);
  });
}

/* ------------------------------------------------------------------ events */

interface Subscriber {
  req: http.ClientRequest;
  lines: number;
  status: number;
  /** performance.now() when `lines` reached the awaited count. */
  doneAt: number;
  error?: string;
}

let subscribers: Subscriber[] = [];
let reference: Subscriber | undefined;
let awaited = Number.POSITIVE_INFINITY;

let pendingSubscribers: Subscriber[] = [];

function subscribe(host: string, port: number, path: string, track = false): Promise<Subscriber> {
  return new Promise((resolve) => {
    const sub: Subscriber = {
      req: undefined as unknown as http.ClientRequest,
      lines: 0,
      status: 0,
      doneAt: 0,
    };
    if (track) pendingSubscribers.push(sub);
    sub.req = http.get({ host, port, path, agent: false }, (res) => {
      sub.status = res.statusCode ?? 0;
      res.on("data", (c: Buffer) => {
        for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) sub.lines++;
        if (sub.doneAt === 0 && sub.lines >= awaited) sub.doneAt = performance.now();
      });
      res.on("error", () => {});
      resolve(sub);
    });
    sub.req.on("error", (e) => {
      sub.error = e.message;
      resolve(sub);
    });
  });
}

async function eventsOpen(j: Extract<Job, { kind: "events-open" }>) {
  const t0 = performance.now();
  const deadline = t0 + j.timeoutMs;
  const until = <T>(p: Promise<T>) =>
    Promise.race([p, new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - performance.now())))]);
  awaited = Number.POSITIVE_INFINITY;
  reference = await subscribe(j.reference.host, j.reference.port, j.path);
  const all: Promise<Subscriber>[] = [];
  // open in batches of 100 so the listen backlog is never the thing being measured
  for (let i = 0; i < j.n; i += 100) {
    const waits: Promise<Subscriber>[] = [];
    for (let k = i; k < Math.min(j.n, i + 100); k++) waits.push(subscribe(j.host, j.port, j.path, true));
    all.push(...waits);
    await until(Promise.all(waits));
  }
  await until(Promise.all(all));
  // subscribers whose headers never came stay in the list (with status 0): they count as not delivered
  subscribers = pendingSubscribers;
  pendingSubscribers = [];
  const connected = subscribers.filter((s) => s.status === 200).length;
  return {
    connected,
    failed: j.n - connected,
    errors: [...new Set(subscribers.filter((s) => s.error).map((s) => s.error))].slice(0, 3),
    ms: performance.now() - t0,
  };
}

async function eventsWait(j: Extract<Job, { kind: "events-wait" }>) {
  awaited = j.expected;
  const ref = reference as Subscriber;
  const deadline = performance.now() + j.timeoutMs;
  for (const s of [ref, ...subscribers])
    if (s.doneAt === 0 && s.lines >= awaited) s.doneAt = performance.now();
  while (performance.now() < deadline) {
    if (ref.lines >= awaited && subscribers.every((s) => s.lines >= awaited)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const counts = subscribers.map((s) => s.lines);
  const delivered = subscribers.filter((s) => s.lines === ref.lines && s.lines >= awaited).length;
  const lastDone = Math.max(...subscribers.map((s) => s.doneAt || Number.POSITIVE_INFINITY));
  return {
    expected: awaited,
    reference: ref.lines,
    subscribers: subscribers.length,
    delivered,
    min: counts.length ? Math.min(...counts) : 0,
    max: counts.length ? Math.max(...counts) : 0,
    /** ms between the reference (direct) subscriber's last event and the last subscriber's. */
    lagMs: Number.isFinite(lastDone) ? lastDone - ref.doneAt : Number.NaN,
  };
}

function eventsClose() {
  for (const s of [...subscribers, ...pendingSubscribers]) s.req.destroy();
  pendingSubscribers = [];
  reference?.req.destroy();
  subscribers = [];
  reference = undefined;
  return { closed: true };
}

/* ------------------------------------------------------------------ hijack */

const CHUNK = Buffer.alloc(256 * 1024);
randomFillSync(CHUNK);

function hijack(j: Extract<Job, { kind: "hijack" }>) {
  return new Promise<{ status: number; sent: number; received: number; ms: number }>((resolve, reject) => {
    const s = net.connect({ host: j.host, port: j.port, allowHalfOpen: true });
    let head = Buffer.alloc(0);
    let status = 0;
    let sent = 0;
    let received = 0;
    let t0 = 0;
    let done = false;
    // multiplexed stream parser state: bytes left of the current frame header / payload
    let headerLeft = 8;
    let payloadLeft = 0;
    let header = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      finish(new Error(`hijack timed out after ${j.timeoutMs} ms (sent ${sent}, received ${received})`));
    }, j.timeoutMs);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const ms = performance.now() - t0;
      s.destroy();
      if (err) reject(err);
      else resolve({ status, sent, received, ms });
    };
    const consume = (c: Buffer) => {
      let i = 0;
      while (i < c.length) {
        if (payloadLeft === 0) {
          const take = Math.min(headerLeft, c.length - i);
          header = Buffer.concat([header, c.subarray(i, i + take)]);
          headerLeft -= take;
          i += take;
          if (headerLeft === 0) {
            payloadLeft = header.readUInt32BE(4);
            header = Buffer.alloc(0);
            headerLeft = 8;
          }
        } else {
          const take = Math.min(payloadLeft, c.length - i);
          payloadLeft -= take;
          received += take;
          i += take;
        }
      }
      if (received >= j.bytes) finish();
    };
    const pump = () => {
      while (sent < j.bytes) {
        const n = Math.min(CHUNK.length, j.bytes - sent);
        sent += n;
        if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          s.once("drain", pump);
          return;
        }
      }
      s.end();
    };
    s.on("data", (c: Buffer) => {
      if (status === 0) {
        head = Buffer.concat([head, c]);
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) return;
        status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString("latin1"))?.[1] ?? 0);
        if (status !== 101 && status !== 200) {
          finish(new Error(`hijack answered ${head.toString("latin1").slice(0, 300)}`));
          return;
        }
        t0 = performance.now();
        const rest = head.subarray(end + 4);
        if (rest.length) consume(rest);
        pump();
        return;
      }
      consume(c);
    });
    s.on("end", () =>
      finish(received >= j.bytes ? undefined : new Error(`stream ended after ${received} bytes`)),
    );
    s.on("error", (e) => finish(e));
    s.on("connect", () => s.write(j.request));
  });
}

/* ------------------------------------------------------------------ idle keep-alive connections */

let idle: net.Socket[] = [];

function idleOne(host: string, port: number, path: string): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let buf = "";
    s.setEncoding("latin1");
    s.on("connect", () => s.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`));
    const onData = (c: string) => {
      buf += c;
      const end = buf.indexOf("\r\n\r\n");
      if (end === -1) return;
      const len = Number(/content-length:\s*(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      s.off("data", onData);
      resolve(buf.startsWith("HTTP/1.1 200") ? s : undefined);
    };
    s.on("data", onData);
    s.on("error", () => resolve(undefined));
  });
}

async function idleOpen(j: Extract<Job, { kind: "idle-open" }>) {
  const t0 = performance.now();
  const deadline = t0 + j.timeoutMs;
  for (let i = 0; i < j.n && performance.now() < deadline; i += 50) {
    const batch: Promise<net.Socket | undefined>[] = [];
    for (let k = i; k < Math.min(j.n, i + 50); k++) batch.push(idleOne(j.host, j.port, j.path));
    for (const s of await Promise.all(batch)) if (s) idle.push(s);
  }
  return { open: idle.length, failed: j.n - idle.length, ms: performance.now() - t0 };
}

function idleClose() {
  const stillOpen = idle.filter((s) => !s.destroyed && s.readyState === "open").length;
  for (const s of idle) s.destroy();
  idle = [];
  return { stillOpen };
}

/* ------------------------------------------------------------------ dispatch */

async function run(job: Job): Promise<unknown> {
  switch (job.kind) {
    case "download":
      return download(job);
    case "upload":
      return upload(job);
    case "events-open":
      return eventsOpen(job);
    case "events-wait":
      return eventsWait(job);
    case "events-close":
      return eventsClose();
    case "hijack":
      return hijack(job);
    case "idle-open":
      return idleOpen(job);
    case "idle-close":
      return idleClose();
    case "exit":
      setImmediate(() => process.exit(0));
      return { bye: true };
  }
}

if (process.send) {
  process.on("message", (m: { id: number; job: Job }) => {
    run(m.job).then(
      (result) => process.send?.({ id: m.id, result }),
      (e: Error) => process.send?.({ id: m.id, error: e.message }),
    );
  });
  // the parent going away ends us too
  process.on("disconnect", () => process.exit(0));
}
