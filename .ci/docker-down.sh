#!/usr/bin/env bash
# Stop the private Docker engine started by .ci/docker-up.sh, leaving its data root (images, the
# storage-driver choice) in place so the next docker-up.sh is fast. Idempotent: nothing running -> no-op.
# Only the dockerd named in our own pidfile is touched, never another engine on the host.
set -euo pipefail

ROOT=${RCYC_DOCKER_ROOT:-/var/lib/rcyc-docker}
PIDFILE=/var/run/rcyc-docker.pid
EXEC_ROOT=/var/run/rcyc-docker
GRACE=20   # seconds between SIGTERM and SIGKILL; dockerd stops its containers within its own 15 s

say() { echo "docker-down: $*" >&2; }

# True if $1 is a live process whose command name is $2 (guards against a stale pidfile whose pid was
# reused by an unrelated process).
is_proc() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(cat /proc/"$1"/comm 2>/dev/null)" = "$2" ]; }

stop() {   # stop pid $1 (named $2): TERM, wait up to GRACE s, then KILL
    local pid=$1 name=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < GRACE * 2; i++)); do is_proc "$pid" "$name" || return 0; sleep 0.5; done
    say "$name (pid $pid) still running after ${GRACE}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 10; i++)); do is_proc "$pid" "$name" || return 0; sleep 0.5; done
    say "ERROR: $name (pid $pid) survived SIGKILL"
    return 1
}

pid=$(cat "$PIDFILE" 2>/dev/null || true)
if is_proc "$pid" dockerd; then
    stop "$pid" dockerd
fi
# dockerd removes its pidfile on a clean exit; after a SIGKILL (or a crash) we do it.
rm -f "$PIDFILE"

# dockerd supervises its own containerd under our exec-root and stops it on a clean shutdown; after a
# SIGKILL that containerd is orphaned, so stop it too (dockerd would otherwise reattach to it next time,
# which works, but "down" should mean down).
cpid=$(cat "$EXEC_ROOT/containerd/containerd.pid" 2>/dev/null || true)
if is_proc "$cpid" containerd; then
    stop "$cpid" containerd
fi

# A dockerd that was SIGKILLed leaves its mounts behind (e.g. EXEC_ROOT/netns/default, container rootfs
# under ROOT/overlay2/*/merged). Now that no engine of ours runs, unmount what is strictly below those
# two directories, deepest first. The data root itself is left alone: it may be a real disk.
# (/proc/self/mounts shows resolved paths: /var/run is a symlink to /run.)
if ! is_proc "$(cat "$PIDFILE" 2>/dev/null || true)" dockerd; then
    awk -v a="$(readlink -m "$EXEC_ROOT")/" -v b="$(readlink -m "$ROOT")/" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts \
        | sort -r | while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
fi
exit 0
