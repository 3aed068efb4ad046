/**
 * `portcullis healthcheck`: asks the admin listener's `/ready` when one is configured, else `/_ping`
 * through the proxy's own listener; exit 0 when the daemon answers.
 */
import http from "node:http";
import type { ListenerSpec } from "../config/config.js";

export function healthcheckTarget(listener: ListenerSpec): http.RequestOptions {
  if (listener.kind === "unix") return { socketPath: listener.path };
  const host = listener.host === "::" || listener.host === "0.0.0.0" ? "127.0.0.1" : listener.host;
  return { host, port: listener.port };
}

export function healthcheck(
  listener: ListenerSpec,
  timeoutMs = 3000,
  path: "/_ping" | "/ready" = "/_ping",
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      { ...healthcheckTarget(listener), method: "GET", path, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => {
          const ok = res.statusCode === 200;
          resolve({
            ok,
            detail: ok
              ? path === "/ready"
                ? `daemon answers (admin /ready: ${body.trim()})`
                : `daemon answers through the proxy (API ${res.headers["api-version"] ?? "?"})`
              : `HTTP ${res.statusCode}${path === "/ready" ? " from admin /ready" : ""}: ${body.trim()}`,
          });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (error) => resolve({ ok: false, detail: `proxy not reachable: ${error.message}` }));
    req.end();
  });
}
