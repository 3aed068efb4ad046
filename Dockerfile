# syntax=docker/dockerfile:1
#
# portcullis: a default-deny policy proxy for the Docker Engine API.
#
#   docker build -t portcullis:latest .
#
# Build stage: compile the TypeScript and keep only the production dependencies.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
# tsconfig also includes test/ and bench/; they are not in the build context, so only src/ is compiled.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts

# Runtime stage: Node.js, the compiled app, its production node_modules; nothing else.
FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# Non-root (uid/gid 10001, as in scripts/build-test-image.sh). To reach the Docker socket give the
# container the socket's group: docker run --group-add "$(stat -c %g /var/run/docker.sock)" ...
# (compose: group_add; swarm stacks: user: "10001:<gid>"; see docs/deploy.md).
RUN groupadd --system --gid 10001 portcullis \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin portcullis
USER 10001:10001
EXPOSE 2375
# The app writes nothing to disk: run it with --read-only (compose: read_only: true).
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "/app/dist/src/cli/main.js", "healthcheck"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve"]
