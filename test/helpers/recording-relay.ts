/**
 * Test helper: a plain unix-socket relay to a daemon's socket that keeps the raw bytes sent towards
 * the daemon (headers and bodies, bounded by `maxBytes`). For a parsed, per-request record use
 * tap.ts; this one is for "these bytes never reach the daemon" checks.
 *
 *   const relay = await recordingRelay(join(dir, "relay.sock"), engine.socketPath);
 *   after(() => relay.close());
 *   ... give join(dir, "relay.sock") to the proxy as its upstream; relay.text() ...
 */
import net from "node:net";

export interface RecordingRelay {
  /** Everything sent to the daemon so far, as latin1 text. */
  text(): string;
  /** How many bytes were recorded (stops growing at the cap). */
  bytes(): number;
  /** Request lines ("METHOD TARGET") sent to the daemon so far. */
  requestLines(): string[];
  close(): Promise<void>;
}

/** Listens on `path` and relays every connection to the unix socket `target`. */
export async function recordingRelay(
  path: string,
  target: string,
  maxBytes = 32 * 1024 * 1024,
): Promise<RecordingRelay> {
  const chunks: Buffer[] = [];
  let recorded = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const daemon = net.connect({ path: target, allowHalfOpen: true });
    sockets.add(client);
    sockets.add(daemon);
    client.on("data", (b: Buffer) => {
      // Bounded: the tests send small requests; the cap keeps a runaway from eating memory.
      if (recorded < maxBytes) {
        chunks.push(Buffer.from(b));
        recorded += b.length;
      }
    });
    client.pipe(daemon);
    daemon.pipe(client);
    const drop = () => {
      client.destroy();
      daemon.destroy();
      sockets.delete(client);
      sockets.delete(daemon);
    };
    for (const s of [client, daemon]) {
      s.on("error", drop);
      s.on("close", drop);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, resolve);
  });
  const text = () => Buffer.concat(chunks).toString("latin1");
  return {
    text,
    bytes: () => recorded,
    requestLines: () =>
      [...text().matchAll(/(?:^|\r\n)([A-Z]+ \S+) HTTP\/1\.1\r\n/g)].map((m) => m[1] as string),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
