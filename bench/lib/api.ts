/**
 * A tiny Docker Engine API client for the bench's control plane (seeding, starting and stopping
 * containers): always talks to the daemon's own unix socket, never through a proxy under test.
 */
import http from "node:http";

export interface ApiResponse {
  status: number;
  body: string;
}

export class DockerApi {
  constructor(
    readonly socketPath: string,
    readonly version = "v1.41",
  ) {}

  request(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path: `/${this.version}${path}`,
          headers: payload
            ? { "content-type": "application/json", "content-length": String(payload.length) }
            : {},
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Like request(), but throws unless the status is 2xx; returns the parsed JSON body (or null). */
  async call<T = unknown>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const r = await this.request(method, path, body, timeoutMs);
    if (r.status < 200 || r.status > 299)
      throw new Error(`${method} ${path} -> ${r.status}: ${r.body.trim()}`);
    return (r.body ? JSON.parse(r.body) : null) as T;
  }

  async createContainer(name: string, config: Record<string, unknown>): Promise<string> {
    const r = await this.call<{ Id: string }>(
      "POST",
      `/containers/create?name=${encodeURIComponent(name)}`,
      config,
    );
    return r.Id;
  }
}
