/** `portcullis serve`: builds everything from the config once, starts the listeners, handles signals. */
import { describeListener, type ProxyConfig } from "../config/config.js";
import { createLogger, type Logger } from "../observe/logger.js";
import { envPolicy } from "../policy/env-policy.js";
import { createGate } from "../proxy/gate.js";
import { type RunningProxy, startProxy } from "../proxy/server.js";
import { createUpstream } from "../proxy/upstream.js";
import { buildRouteIndex } from "../routing/match.js";
import { ROUTES } from "../routing/route-table.generated.js";

export async function serve(
  config: ProxyConfig,
  logger: Logger = createLogger(config.logLevel),
): Promise<RunningProxy> {
  const policy = envPolicy(ROUTES, config.toggles);
  const gate = createGate(buildRouteIndex(ROUTES), policy);
  const upstream = createUpstream(config.upstream);
  const proxy = await startProxy({ config, gate, upstream, logger });
  logger.info(
    {
      listeners: proxy.addresses,
      upstream: upstream.description,
      allow: policy.summary,
      source: "environment toggles",
    },
    `portcullis listening on ${proxy.addresses.join(", ")} -> ${upstream.description}; allowed: ${
      policy.summary.length > 0 ? policy.summary.join(" ") : "nothing"
    }`,
  );
  return proxy;
}

/** Runs until SIGTERM/SIGINT, then closes within the configured grace period. */
export async function serveUntilSignalled(config: ProxyConfig): Promise<void> {
  const logger = createLogger(config.logLevel);
  let proxy: RunningProxy;
  try {
    proxy = await serve(config, logger);
  } catch (error) {
    const listeners = config.listeners.map(describeListener).join(", ");
    logger.fatal({ err: error }, `portcullis could not start on ${listeners}: ${(error as Error).message}`);
    logger.flush();
    process.exitCode = 1;
    return;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: no new connections, open streams get the grace period");
    // Hard stop: whatever still holds the process goes after grace + 400 ms.
    setTimeout(() => process.exit(0), config.shutdownGraceMs + 400).unref();
    proxy.close().then(() => {
      logger.info("stopped");
      logger.flush();
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
