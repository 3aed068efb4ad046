#!/bin/sh
# Plain `docker run`: portcullis for clients on this host only (127.0.0.1:2375), here with the
# toggle Traefik's docker provider needs. Shown verbatim in docs/deploy.md and run by
# test/e2e/deploy-examples.test.ts.
docker run -d --name socket-proxy --restart unless-stopped \
  --read-only \
  --group-add "$(stat -c %g /var/run/docker.sock)" \
  -v /var/run/docker.sock:/var/run/docker.sock:ro \
  -e CONTAINERS=1 \
  -p 127.0.0.1:2375:2375 \
  "${PORTCULLIS_IMAGE:-portcullis:latest}"
