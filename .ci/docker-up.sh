#!/usr/bin/env bash
# Bring up a private Docker engine for rcyc's container tests, and a local Python base image.
#
#   eval "$(.ci/docker-up.sh)"     # -> export DOCKER_HOST=unix:///var/run/rcyc-docker.sock
#
# Why a private engine: CI machines have no running engine and may not create bridge networks or send
# traffic anywhere but the package registries, so we run our own dockerd with all networking plumbing
# (bridge, iptables, forwarding, masquerading) off, on a socket/pidfile/exec-root/data-root of its own so
# it never fights another engine on the same host. Containers must therefore use `--network host`
# (or `none`); `docker build` needs `--network host` too.
#
# Why mmdebstrap: no registry but Debian's/PyPI/npm is reachable, so we cannot `docker pull`; the base
# image is bootstrapped from the same Debian mirror the host's apt uses and `docker import`ed.
#
# Idempotent: re-running only does what is missing. Only the export line goes to stdout (for eval);
# progress goes to stderr, and the output of noisy steps is kept in logs that are shown only on failure.
#
# Env: RCYC_DOCKER_ROOT (data root, default /var/lib/rcyc-docker),
#      RCYC_DOCKER_STORAGE_DRIVER (force a driver; default: what this data root used last, else overlay2,
#      falling back to vfs if dockerd cannot start with overlay2).
set -euo pipefail

ROOT=${RCYC_DOCKER_ROOT:-/var/lib/rcyc-docker}
SOCK=/var/run/rcyc-docker.sock
HOST=unix://$SOCK
PIDFILE=/var/run/rcyc-docker.pid
EXEC_ROOT=/var/run/rcyc-docker
LOG=$ROOT/dockerd.log
DRIVER_FILE=$ROOT/.rcyc-storage-driver   # remembers the driver that worked, so images survive restarts
IMAGE=rcyc/python-base:bookworm
START_TIMEOUT=30

say() { echo "docker-up: $*" >&2; }
die() { echo "docker-up: ERROR: $*" >&2; exit 1; }
# Run a noisy command with its output in a log; show the log only if it fails.
quiet() {
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        echo "docker-up: ERROR: command failed: $*" >&2
        tail -n 40 "$log" >&2
        return 1
    fi
}

# Prefer the Debian docker.io client (same version as the daemon) when it is there; a newer client
# elsewhere on PATH would also work, it negotiates the API version down.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker
dk() { "$DOCKER" -H "$HOST" "$@"; }
engine_answers() { timeout 5 "$DOCKER" -H "$HOST" version >/dev/null 2>&1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts dockerd)"

# ---------------------------------------------------------------------------------------------------
# 1. Packages (only the missing ones; one apt-get update first).
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in docker.io mmdebstrap docker-registry; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' maintainer scripts from starting the stock docker/containerd/registry services:
    # the stock dockerd would create the docker0 bridge, which this machine must not do. A policy-rc.d
    # that exits 101 forbids service starts; install a temporary one unless one is already there.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    trap 'if [ -n "${own_policy:-}" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
    aptlog=$(mktemp /tmp/rcyc-docker-apt.XXXXXX)
    quiet "$aptlog" apt-get update
    quiet "$aptlog" apt-get install -y --no-install-recommends "${missing[@]}"
    rm -f "$aptlog"
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; own_policy=; fi
fi

# ---------------------------------------------------------------------------------------------------
# 2. dockerd.
mkdir -p "$ROOT" "$EXEC_ROOT"

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Start dockerd with the given storage driver and wait for it to answer. Returns 1 (having stopped what
# it started) if it exits or does not answer within START_TIMEOUT.
start_dockerd() {
    local driver=$1 pid i
    echo "=== $(date -Is) starting dockerd (storage driver $driver)" >>"$LOG"
    # setsid + all three fds redirected: dockerd must not hold the stdout of `$(...)` in
    # `eval "$(docker-up.sh)"` open (the caller would hang), nor die with our session.
    # cgroups: dockerd 20.10 handles v1, hybrid and v2 with its default cgroupfs driver; no flag needed.
    setsid dockerd \
        --host "$HOST" \
        --data-root "$ROOT" \
        --exec-root "$EXEC_ROOT" \
        --pidfile "$PIDFILE" \
        --storage-driver "$driver" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --containerd-namespace rcyc-moby --containerd-plugins-namespace rcyc-plugins \
        </dev/null >>"$LOG" 2>&1 &
    pid=$!
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        engine_answers && return 0
        pid_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 1; }
        sleep 0.5
    done
    # Hung: stop it so that a retry (or the next run) starts clean.
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do pid_alive "$pid" || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

if engine_answers; then
    say "engine already answers on $HOST"
else
    # A dockerd of ours that is alive but not answering (e.g. still starting): give it the timeout,
    # rather than starting a second one on the same pidfile/data root.
    oldpid=$(cat "$PIDFILE" 2>/dev/null || true)
    if pid_alive "$oldpid" && [ "$(cat /proc/"$oldpid"/comm 2>/dev/null)" = dockerd ]; then
        say "dockerd (pid $oldpid) is running but not answering yet; waiting"
        for ((i = 0; i < START_TIMEOUT * 2; i++)); do engine_answers && break; sleep 0.5; done
        engine_answers || { tail -n 30 "$LOG" >&2; die "dockerd pid $oldpid does not answer on $HOST; run .ci/docker-down.sh"; }
    else
        # Driver choice: explicit override, else the one this data root already holds images in
        # (switching would hide them), else try overlay2 and fall back to vfs (slow, disk-hungry, but
        # works on any filesystem, e.g. when the data root itself sits on overlayfs).
        driver=${RCYC_DOCKER_STORAGE_DRIVER:-$(cat "$DRIVER_FILE" 2>/dev/null || true)}
        if [ -n "$driver" ]; then
            start_dockerd "$driver" || { tail -n 30 "$LOG" >&2; die "dockerd did not come up with storage driver $driver (log: $LOG)"; }
        elif start_dockerd overlay2; then
            driver=overlay2
        else
            say "dockerd failed with overlay2 ($(grep -E 'failed to start|level=(error|fatal)' "$LOG" | tail -n 1)); retrying with vfs"
            start_dockerd vfs || { tail -n 30 "$LOG" >&2; die "dockerd did not come up with vfs either (log: $LOG)"; }
            driver=vfs
        fi
        echo "$driver" >"$DRIVER_FILE"
        say "dockerd started (pid $(cat "$PIDFILE")), log $LOG"
    fi
fi
say "storage driver: $(dk info --format '{{.Driver}}'), cgroup $(dk info --format '{{.CgroupVersion}}' 2>/dev/null || echo '?')"

# ---------------------------------------------------------------------------------------------------
# 3. Base image, built from Debian packages (nothing is pulled).
if dk image inspect "$IMAGE" >/dev/null 2>&1; then
    say "image $IMAGE present"
else
    say "building $IMAGE with mmdebstrap (~30-60 s)"
    # Use the Debian sources the host's apt uses (its mirror/proxy is the one that is reachable), keeping
    # only the bookworm suites so third-party repos on the host don't leak into the image. Both formats:
    # one-line (*.list) and deb822 (*.sources). With none found, mmdebstrap's own default mirror is used.
    mirrors=$(
        shopt -s nullglob
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] && awk '$1 == "deb" { sub(/\[[^]]*\] */, ""); if ($3 ~ /^bookworm(-[a-z]+)?$/) print }' "$f"
        done
        for f in /etc/apt/sources.list.d/*.sources; do
            awk '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && enabled != "no")
                        for (u in U) for (s in S) if (s ~ /^bookworm(-[a-z]+)?$/) print "deb " u " " s " " comps
                    types = ""; comps = ""; enabled = ""; delete U; delete S
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
                  if (key == "types") types = $0; else if (key == "components") comps = $0
                  else if (key == "enabled") enabled = tolower($0)
                  else if (key == "uris") { n = split($0, a, " "); for (i = 1; i <= n; i++) U[a[i]] = 1 }
                  else if (key == "suites") { n = split($0, a, " "); for (i = 1; i <= n; i++) S[a[i]] = 1 } }
                END { flush() }' "$f"
        done
    )
    mirror_args=()
    if [ -n "$mirrors" ]; then
        while IFS= read -r line; do mirror_args+=("$line"); done <<<"$mirrors"
    fi

    mmlog=$ROOT/mmdebstrap.log
    # Import without a tag and tag only when both ends of the pipe succeeded: a truncated rootfs from a
    # failed mmdebstrap must never end up as $IMAGE, which later runs would trust and skip rebuilding.
    idfile=$ROOT/.import-id
    rm -f "$idfile"
    set +e
    mmdebstrap --variant=apt --include=python3,python3-pip,python3-venv,ca-certificates \
            bookworm - "${mirror_args[@]}" 2>"$mmlog" \
        | dk import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["python3"]' \
            - >"$idfile" 2>>"$mmlog"
    rc=("${PIPESTATUS[@]}")
    set -e
    id=$(cat "$idfile" 2>/dev/null || true)
    rm -f "$idfile"
    if [ "${rc[0]}" != 0 ] || [ "${rc[1]}" != 0 ] || [ -z "$id" ]; then
        if [ -n "$id" ]; then dk rmi "$id" >/dev/null 2>&1 || true; fi
        tail -n 40 "$mmlog" >&2
        die "building $IMAGE failed (mmdebstrap rc ${rc[0]}, docker import rc ${rc[1]}; log: $mmlog)"
    fi
    dk tag "$id" "$IMAGE"
    # Smoke test: the image runs (host network: this engine has no bridge).
    pyver=$(dk run --rm --network host "$IMAGE" python3 -V 2>&1) || die "$IMAGE does not run: $pyver"
    say "built $IMAGE ($pyver)"
fi

# ---------------------------------------------------------------------------------------------------
# 4. The only line on stdout, for eval.
echo "export DOCKER_HOST=$HOST"
