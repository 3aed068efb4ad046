#!/bin/sh
# TEST PATH ONLY. Assembles an image equivalent to the Dockerfile's WITHOUT pulling anything:
# a rootfs with this machine's Node.js (/usr/bin/node, the libraries `ldd` lists, the dynamic
# loader), the already built app (dist/src, package.json, production node_modules), a non-root
# user, then `docker import`s it with the Dockerfile's ENTRYPOINT/CMD/USER/EXPOSE/HEALTHCHECK.
# Production images are built with the Dockerfile (docs/deploy.md); this exists because the test
# machines have no registry access, so `FROM node:...` cannot be pulled there.
#
# Usage: scripts/build-test-image.sh [-H DOCKER_HOST]... [-t TAG] [-o TARBALL]
#   -H  a daemon to import into; repeatable (default: $DOCKER_HOST, else the CLI's default).
#   -t  image tag (default portcullis:test).
#   -o  only write the rootfs tarball to this file (no docker needed); `-o -` writes to stdout.
# Needs: `npm run build` done (dist/src), node_modules installed, tar, ldd.
# The same image doubles as a test client: `docker run --entrypoint node portcullis:test -e '...'`.
set -eu

HOSTS=""
TAG="portcullis:test"
OUT=""
while getopts "H:t:o:" opt; do
  case "$opt" in
    H) HOSTS="$HOSTS $OPTARG" ;;
    t) TAG="$OPTARG" ;;
    o) OUT="$OPTARG" ;;
    *) echo "usage: $0 [-H DOCKER_HOST] [-t TAG] [-o TARBALL]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NODE="${PORTCULLIS_TEST_NODE:-$(command -v node)}"
NODE="$(readlink -f "$NODE")"
APP_UID=10001
APP_GID=10001

[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "$0: $ROOT/dist/src/cli/main.js missing: run npm run build first" >&2; exit 1; }
[ -d "$ROOT/node_modules" ] || { echo "$0: $ROOT/node_modules missing: run npm ci first" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-test-image-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT INT TERM
R="$WORK/rootfs"
mkdir -p "$R/usr/bin" "$R/app" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev" "$R/var/run" "$R/home/portcullis"
chmod 1777 "$R/tmp"

# 1. Node.js and exactly the shared objects it links against (plus the loader), at the same paths.
cp "$NODE" "$R/usr/bin/node"
ldd "$NODE" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | sort -u | while read -r lib; do
  dest="$R$lib"
  mkdir -p "$(dirname "$dest")"
  cp -L "$lib" "$dest"
done

# 2. The app: compiled sources, package.json (read by --version), production node_modules only.
mkdir -p "$R/app/dist"
cp -R "$ROOT/dist/src" "$R/app/dist/src"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$WORK/"
cp -R "$ROOT/node_modules" "$WORK/node_modules"
(cd "$WORK" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --offline --loglevel=error >/dev/null)
find "$WORK/node_modules" -depth -type d -empty -delete
mv "$WORK/node_modules" "$R/app/node_modules"
cp "$ROOT/package.json" "$R/app/package.json"

# 3. Users and name resolution (glibc >= 2.34 has files/dns NSS built into libc.so.6).
cat >"$R/etc/passwd" <<EOT
root:x:0:0:root:/root:/usr/sbin/nologin
portcullis:x:$APP_UID:$APP_GID:portcullis:/home/portcullis:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOT
cat >"$R/etc/group" <<EOT
root:x:0:
portcullis:x:$APP_GID:
nogroup:x:65534:
EOT
echo "hosts: files dns" >"$R/etc/nsswitch.conf"
: >"$R/etc/hosts"
: >"$R/etc/resolv.conf"
chown "$APP_UID:$APP_GID" "$R/home/portcullis"

TAR="$WORK/rootfs.tar"
tar --numeric-owner -C "$R" -cf "$TAR" .

if [ -n "$OUT" ]; then
  if [ "$OUT" = "-" ]; then cat "$TAR"; else cp "$TAR" "$OUT"; fi
  exit 0
fi

# 4. Import with the Dockerfile's runtime settings, into each daemon.
[ -n "$HOSTS" ] || HOSTS="${DOCKER_HOST:-default}"
for host in $HOSTS; do
  if [ "$host" = default ]; then set -- docker; else set -- docker -H "$host"; fi
  "$@" import \
    --change 'ENV NODE_ENV=production' \
    --change 'WORKDIR /app' \
    --change "USER $APP_UID:$APP_GID" \
    --change 'EXPOSE 2375' \
    --change 'HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["node", "/app/dist/src/cli/main.js", "healthcheck"]' \
    --change 'ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]' \
    --change 'CMD ["serve"]' \
    --change 'LABEL org.opencontainers.image.title=portcullis io.portcullis.test-image=true' \
    "$TAR" "$TAG" >/dev/null
  echo "imported $TAG into $host" >&2
done
echo "$TAG"
