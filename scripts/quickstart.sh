#!/usr/bin/env sh
# Quick start: install, build and run portcullis in front of the local Docker socket with safe defaults
# (loopback only; only /_ping, /version and /events allowed). Extra arguments go to `portcullis serve`.
set -eu
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec node dist/src/cli/main.js serve --listen tcp://127.0.0.1:2375 "$@"
