# shellcheck shell=bash
# Shared set-up for scripts/up and scripts/test: install what is missing, start Docker and Redis if they do
# not answer, install and build berth, build the runner image without needing a registry.
# Every step checks first and does nothing when its work is already done, so a second run takes seconds.

set -euo pipefail

BERTH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BERTH_STATE_DIR=${BERTH_STATE_DIR:-$HOME/.berth}
RUNNER_IMAGE=${BERTH_DEFAULT_IMAGE:-berth-runner:latest}
BASE_IMAGE_LOCAL=berth-base:bookworm

say() { printf '[berth setup] %s\n' "$*" >&2; }
die() { printf '[berth setup] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "'$*' needs root and sudo is not available"
  fi
}

# Load .env (if present) so the set-up uses the same BERTH_REDIS_URL / DOCKER_HOST as the server.
load_env_file() {
  if [ -f "$BERTH_ROOT/.env" ]; then
    set -a
    # shellcheck disable=SC1091
    . "$BERTH_ROOT/.env"
    set +a
  fi
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
}
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $*, and apt-get is not available to install it; install it by hand"
  apt_update_once
  say "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_packages() {
  local missing=()
  command -v node >/dev/null 2>&1 || die "Node.js 20 or newer is required (node was not found on PATH)"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js 20 or newer is required (found $(node --version))"
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  # redis-server also runs the tests' throwaway Sentinel and Cluster (scripts/redis-topology): a sentinel is
  # `redis-server --sentinel`, the program Debian's redis-sentinel package only links to (and would start as a service).
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v pigz >/dev/null 2>&1 || missing+=(pigz)
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  # Debian's Chromium: the dashboard's tests drive it headless (nothing downloads a browser of its own).
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # The tests' hostile clients (test/helpers/stalled-readers.py) set socket options Node cannot.
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ "${BERTH_SETUP_S3:-0}" = 1 ]; then
    # The throwaway S3-compatible store the tests use (scripts/s3-rgw): a Ceph monitor, an OSD and the RADOS Gateway.
    command -v ceph-mon >/dev/null 2>&1 || missing+=(ceph-mon)
    command -v ceph-osd >/dev/null 2>&1 || missing+=(ceph-osd)
    command -v radosgw >/dev/null 2>&1 || missing+=(radosgw)
    command -v radosgw-admin >/dev/null 2>&1 || missing+=(ceph-common)
  fi
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  # A docker CLI may already be on PATH without an engine; docker.io brings both.
  command -v docker >/dev/null 2>&1 || apt_install docker.io
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
    unix:///var/run/docker.sock) ;;
    *) die "Docker at DOCKER_HOST=$DOCKER_HOST does not answer; start it, or unset DOCKER_HOST to use a local engine" ;;
  esac
  say "starting dockerd"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    # A dockerd that was killed (machine or session stopped) leaves its pid file, and a new one refuses to start.
    if ! pgrep -x dockerd >/dev/null 2>&1 && [ -e /var/run/docker.pid ]; then
      say "removing the stale /var/run/docker.pid of a dockerd that is gone"
      as_root rm -f /var/run/docker.pid
    fi
    mkdir -p "$BERTH_STATE_DIR"
    # A session of its own: the engine outlives this run and whatever signals the run's process group.
    as_root setsid -f dockerd >"$BERTH_STATE_DIR/dockerd.log" 2>&1 </dev/null
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  die "dockerd did not answer within 60 s; see $BERTH_STATE_DIR/dockerd.log"
}

redis_url() { printf '%s' "${BERTH_REDIS_URL:-redis://127.0.0.1:6379}"; }

ensure_redis() {
  local url host port
  url=$(redis_url)
  case "$url" in
    redis+sentinel://*|rediss+sentinel://*|redis+cluster://*|rediss+cluster://*)
      # A Sentinel or Cluster deployment is run by its operators; berth reports at start if it does not answer.
      say "BERTH_REDIS_URL names a Redis Sentinel or Cluster deployment; it is not started from here"
      return ;;
  esac
  if redis-cli -u "$url" ping 2>/dev/null | grep -q PONG; then return; fi
  # Only a local Redis can be started from here.
  host=$(node -e 'const u=new URL(process.argv[1]); process.stdout.write(u.hostname)' "$url")
  port=$(node -e 'const u=new URL(process.argv[1]); process.stdout.write(u.port || "6379")' "$url")
  case "$host" in
    127.*|localhost|"[::1]"|::1) ;;
    *) die "Redis at $host:$port (BERTH_REDIS_URL) does not answer, and it is not local, so it is not started from here" ;;
  esac
  say "starting redis-server on $host:$port"
  mkdir -p "$BERTH_STATE_DIR/redis"
  # noeviction: BullMQ must never lose keys to memory pressure. appendonly: queued tasks survive a restart.
  redis-server --bind "${host//[\[\]]/}" --port "$port" --daemonize yes \
    --dir "$BERTH_STATE_DIR/redis" --appendonly yes --maxmemory-policy noeviction \
    --logfile "$BERTH_STATE_DIR/redis/redis.log" >/dev/null
  for _ in $(seq 1 30); do
    redis-cli -u "$url" ping 2>/dev/null | grep -q PONG && return
    sleep 0.5
  done
  die "redis-server did not answer on $host:$port; see $BERTH_STATE_DIR/redis/redis.log"
}

ensure_node_deps() {
  cd "$BERTH_ROOT"
  local want have=""
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  [ -f node_modules/.berth-lock-hash ] && have=$(cat node_modules/.berth-lock-hash)
  if [ "$want" != "$have" ]; then
    say "installing npm dependencies (npm ci: exactly the committed lockfile)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
    printf '%s' "$want" > node_modules/.berth-lock-hash
  fi
}

build_berth() {
  cd "$BERTH_ROOT"
  say "building berth"
  npm run --silent build
  chmod +x dist/cli/main.js
}

# `berth` on the PATH (a link to this checkout's build), unless another berth is installed there.
link_cli() {
  local link=/usr/local/bin/berth current
  current=$(readlink "$link" 2>/dev/null || true)
  [ "$current" = "$BERTH_ROOT/dist/cli/main.js" ] && return
  if [ -e "$link" ] && [ -z "$current" ]; then
    say "$link exists and is not a link; run this checkout's CLI as $BERTH_ROOT/dist/cli/main.js"
    return
  fi
  if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then
    as_root ln -sfn "$BERTH_ROOT/dist/cli/main.js" "$link" && say "linked $link to this checkout's CLI"
  fi
}

# Runner image: rebuilt only when runner-image/ changes (its hash is kept as a label on the image).
ensure_runner_image() {
  local hash current
  hash=$(cd "$BERTH_ROOT/runner-image" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  current=$(docker image inspect -f '{{ index .Config.Labels "berth.runner-hash" }}' "$RUNNER_IMAGE" 2>/dev/null || true)
  if [ "$current" = "$hash" ]; then return; fi

  local base
  base=$(sed -n 's/^ARG BASE_IMAGE=//p' "$BERTH_ROOT/runner-image/Dockerfile")
  if ! docker image inspect "$base" >/dev/null 2>&1 && ! timeout 120 docker pull -q "$base" >/dev/null 2>&1; then
    say "$base cannot be pulled; using a Debian base bootstrapped locally ($BASE_IMAGE_LOCAL)"
    ensure_local_base
    base=$BASE_IMAGE_LOCAL
  fi
  say "building $RUNNER_IMAGE from runner-image/ on $base"
  local log="$BERTH_STATE_DIR/runner-image-build.log"
  if ! DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$base" --label "berth.runner-hash=$hash" \
      -t "$RUNNER_IMAGE" "$BERTH_ROOT/runner-image" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "building $RUNNER_IMAGE failed; the whole log is in $log"
  fi
}

ensure_local_base() {
  if docker image inspect "$BASE_IMAGE_LOCAL" >/dev/null 2>&1; then return; fi
  local rootfs include
  include=$(grep -v '^#' "$BERTH_ROOT/runner-image/packages.txt" | paste -sd, -)
  local mirror=${BERTH_DEBIAN_MIRROR:-}
  # The machine's own apt mirror (a local or corporate one where it is set up so); BERTH_DEBIAN_MIRROR overrides.
  [ -n "$mirror" ] || mirror=$(node "$BERTH_ROOT/scripts/lib/debian-mirror.mjs" bookworm) || die "no Debian mirror to bootstrap from"
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/berth-rootfs.XXXXXX")
  say "debootstrap bookworm from $mirror (a few minutes, once)"
  if ! as_root debootstrap --variant=minbase --include="$include" bookworm "$rootfs" "$mirror" \
      >"$BERTH_STATE_DIR/debootstrap.log" 2>&1; then
    as_root rm -rf --one-file-system "$rootfs"
    die "debootstrap failed; see $BERTH_STATE_DIR/debootstrap.log"
  fi
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  as_root tar -C "$rootfs" --numeric-owner -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["bash"]' - "$BASE_IMAGE_LOCAL" >/dev/null
  as_root rm -rf --one-file-system "$rootfs"
}

# What of the checkout differs from its last commit (names and content), to tell whether a run changed it.
tree_state() {
  git -C "$BERTH_ROOT" rev-parse --git-dir >/dev/null 2>&1 || return 0
  git -C "$BERTH_ROOT" status --porcelain --untracked-files=all
  git -C "$BERTH_ROOT" diff HEAD --binary | sha256sum
  (cd "$BERTH_ROOT" && git ls-files --others --exclude-standard -z | xargs -0r sha256sum --)
}

# Prometheus itself scrapes berth in the metrics tests, with a stock scrape configuration. Only the binary of
# Debian's package is unpacked (under BERTH_STATE_DIR): installing the package would start a service.
ensure_prometheus() {
  local dir="$BERTH_STATE_DIR/prometheus"
  if [ ! -x "$dir/usr/bin/prometheus" ]; then
    command -v apt-get >/dev/null 2>&1 || die "the metrics tests need Debian's prometheus package, and apt-get is not available"
    apt_update_once
    say "unpacking Debian's prometheus (the binary only, no service) into $dir"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) || die "apt-get download prometheus failed"
    mkdir -p "$dir"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$dir"
    rm -rf "$tmp"
  fi
  export BERTH_TEST_PROMETHEUS="$dir/usr/bin/prometheus"
}

setup_all() {
  load_env_file
  mkdir -p "$BERTH_STATE_DIR"
  ensure_packages
  ensure_docker
  ensure_redis
  ensure_node_deps
  build_berth
  ensure_runner_image
}
