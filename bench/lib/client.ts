/** The parent side of worker.ts: a forked client process taking jobs over IPC, each with a deadline. */
import { type ChildProcess, fork } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Job } from "./worker.js";

const WORKER = join(dirname(fileURLToPath(import.meta.url)), "worker.js");

export class Client {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor() {
    this.child = fork(WORKER, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (m: { id: number; result?: unknown; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.result);
    });
    this.child.on("exit", () => {
      for (const p of this.pending.values()) p.reject(new Error("the bench client process exited"));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Runs a job in the client process; rejects after `deadlineMs` (the job has its own, shorter, timeout). */
  run<T>(job: Job, deadlineMs = 120_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`bench client: ${job.kind} did not answer within ${deadlineMs} ms`));
      }, deadlineMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, job });
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGKILL");
    await new Promise<void>((r) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) r();
      else this.child.once("exit", () => r());
    });
  }

  killSync(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
}
