/**
 * Realistic daemon state for the bench: labelled containers (a few running `sleep`), user networks,
 * swarm services, containers for the event and hijack scenarios, and a large image for bulk streaming.
 * Everything goes straight to the daemon's unix socket (never through a proxy under test).
 */
import { createWriteStream } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { DockerApi } from "./api.js";

export interface SeedOptions {
  image: string;
  containers: number;
  running: number;
  networks: number;
  services: number;
  eventContainers: number;
  /** Size of the big file in the bulk image, in MiB. */
  bigMiB: number;
  dir: string;
}

export interface Seed {
  containerIds: string[];
  /** A running container (for exec). */
  runningId: string;
  /** Created, not started; labelled bench.events=1. */
  eventIds: string[];
  bigImage: string;
  /** The bulk image as `docker save` writes it, for the upload scenario. */
  bigTar: string;
  bigTarBytes: number;
  ms: number;
}

const SLEEP = ["sleep", "3600"];

export async function seed(api: DockerApi, o: SeedOptions, swarm: boolean): Promise<Seed> {
  const t0 = Date.now();
  const networks: string[] = [];
  for (let i = 0; i < o.networks; i++) {
    const name = `bench-net-${i}`;
    await api.call("POST", "/networks/create", {
      Name: name,
      Driver: "bridge",
      Labels: { "bench.seed": "1", "com.example.tier": i === 0 ? "frontend" : "backend" },
    });
    networks.push(name);
  }

  const containerIds: string[] = [];
  const batch = 10;
  for (let i = 0; i < o.containers; i += batch) {
    const ids = await Promise.all(
      Array.from({ length: Math.min(batch, o.containers - i) }, (_, k) => {
        const n = i + k;
        const app = `app-${n % 7}`;
        return api.createContainer(`bench-c-${String(n).padStart(2, "0")}`, {
          Image: o.image,
          Cmd: SLEEP,
          Env: [`APP=${app}`, `INDEX=${n}`, "LOG_FORMAT=json"],
          Labels: {
            "bench.seed": "1",
            "com.docker.compose.project": "bench",
            "com.docker.compose.service": app,
            "com.docker.compose.container-number": String(n),
            "traefik.enable": n % 2 ? "true" : "false",
            [`traefik.http.routers.${app}.rule`]: `Host(\`${app}.example.test\`)`,
            "org.opencontainers.image.title": app,
          },
          ExposedPorts: { "8080/tcp": {} },
          HostConfig: networks.length ? { NetworkMode: networks[n % networks.length] } : {},
        });
      }),
    );
    containerIds.push(...ids);
  }
  for (const id of containerIds.slice(0, o.running)) await api.call("POST", `/containers/${id}/start`);
  const runningId = containerIds[0] as string;

  const eventIds: string[] = [];
  for (let i = 0; i < o.eventContainers; i++) {
    eventIds.push(
      await api.createContainer(`bench-ev-${i}`, {
        Image: o.image,
        Cmd: SLEEP,
        Labels: { "bench.events": "1" },
        HostConfig: { NetworkMode: "none" },
      }),
    );
  }

  if (swarm) {
    for (let i = 0; i < o.services; i++) {
      await api.call("POST", "/services/create", {
        Name: `bench-svc-${i}`,
        Labels: { "bench.seed": "1", "com.docker.stack.namespace": "bench" },
        TaskTemplate: {
          ContainerSpec: { Image: o.image, Command: SLEEP, Labels: { "bench.seed": "1" } },
          RestartPolicy: { Condition: "none" },
        },
        Mode: { Replicated: { Replicas: 1 } },
      });
    }
  }

  // the bulk image: busybox plus a file of random bytes, committed as its own layer
  const bigImage = "portcullis-bench-big:latest";
  const big = await api.createContainer("bench-big", {
    Image: o.image,
    Cmd: ["dd", "if=/dev/urandom", "of=/big", "bs=1M", `count=${o.bigMiB}`],
    HostConfig: { NetworkMode: "none" },
  });
  await api.call("POST", `/containers/${big}/start`);
  const waited = await api.call<{ StatusCode: number }>(
    "POST",
    `/containers/${big}/wait`,
    undefined,
    300_000,
  );
  if (waited.StatusCode !== 0) throw new Error(`dd in bench-big exited ${waited.StatusCode}`);
  await api.call("POST", `/commit?container=${big}&repo=portcullis-bench-big&tag=latest`, {}, 300_000);
  await api.call("DELETE", `/containers/${big}?force=1`);

  const bigTar = join(o.dir, "big-image.tar");
  const bigTarBytes = await saveImage(api.socketPath, bigImage, bigTar);
  return { containerIds, runningId, eventIds, bigImage, bigTar, bigTarBytes, ms: Date.now() - t0 };
}

function saveImage(socketPath: string, image: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: `/v1.41/images/${image}/get`, timeout: 300_000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`image save answered ${res.statusCode}`));
        return;
      }
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
      });
      pipeline(res, createWriteStream(file)).then(() => resolve(bytes), reject);
    });
    req.on("timeout", () => req.destroy(new Error("image save timed out")));
    req.on("error", reject);
  });
}
