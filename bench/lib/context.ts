/** What every scenario gets: the targets, the daemon, the client process, sizes, and the results sink. */
import type { PrivateDockerd } from "../../test/helpers/dockerd.js";
import type { DockerApi } from "./api.js";
import type { Client } from "./client.js";
import type { Results } from "./report.js";
import type { Seed } from "./seed.js";
import type { ProxyOptions, Target } from "./targets.js";

export interface Sizes {
  rounds: number;
  /** wrk run length (s) per sample. */
  durationS: number;
  warmupS: number;
  connections: number[];
  eventSubscribers: number;
  eventCycles: number;
  hijackMiB: number;
  idleConnections: number;
  startups: number;
}

export const FULL: Sizes = {
  rounds: 3,
  durationS: 3,
  warmupS: 1,
  connections: [16, 128],
  eventSubscribers: 1000,
  eventCycles: 2,
  hijackMiB: 100,
  idleConnections: 1000,
  startups: 7,
};

export const SMOKE: Sizes = {
  rounds: 1,
  durationS: 1,
  warmupS: 0,
  connections: [4],
  eventSubscribers: 10,
  eventCycles: 1,
  hijackMiB: 1,
  idleConnections: 10,
  startups: 1,
};

export interface Ctx {
  readonly sizes: Sizes;
  readonly smoke: boolean;
  readonly targets: readonly Target[];
  readonly engine: PrivateDockerd;
  readonly api: DockerApi;
  readonly client: Client;
  readonly seed: Seed;
  readonly dir: string;
  readonly proxyOptions: ProxyOptions;
  /** Extra node flags for portcullis processes the scenarios start themselves (e.g. --cpu-prof). */
  readonly nodeArgs: string[];
  readonly results: Results;
  log(msg: string): void;
}
