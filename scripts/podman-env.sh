#!/usr/bin/env bash
# Sets up podman for the container tests (tests/container.rs). Idempotent,
# silent when all is in place. Where podman cannot be had it prints
# "SKIP podman: <reason>" and exits 0; the tests then skip with a reason.
#
# - Installs podman, runc, catatonit (the pause process `podman kube play`
#   needs for a pod's infra container) and busybox-static (the tests'
#   builder base image) with apt-get, as root only. `apt-get update` runs only if a first
#   install fails, so a machine with fresh lists is not slowed down.
# - Writes /etc/containers/containers.conf unless it is already equivalent:
#   runc, because crun refuses hybrid cgroup v1/v2 hosts ("cgroups in hybrid
#   mode not supported"); default ulimits no higher than the hard limits,
#   because podman's defaults raise RLIMIT_NOFILE/NPROC, which sandboxes
#   without CAP_SYS_RESOURCE refuse ("setrlimit RLIMIT_NOFILE: Operation not
#   permitted") and then every container fails.
set -euo pipefail

skip() { echo "SKIP podman: $*"; exit 0; }

log="$(mktemp -t podman-env.XXXXXX.log)"
trap 'rm -f "$log"' EXIT

is_root() { [[ "$(id -u)" == 0 ]]; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1; then
        apt-get update -q >>"$log" 2>&1 || return 1
        apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 || return 1
    fi
}

have_static_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        # A static binary has no program interpreter (PT_INTERP).
        if [[ -x "$b" ]] && ! LC_ALL=C readelf -l "$b" 2>/dev/null | grep -q 'interpreter'; then
            return 0
        fi
    done
    return 1
}

want=()
command -v podman >/dev/null 2>&1 || want+=(podman)
command -v runc >/dev/null 2>&1 || want+=(runc)
[[ -x /usr/libexec/podman/catatonit ]] || command -v catatonit >/dev/null 2>&1 ||
    want+=(catatonit)
# CNI's port mapping (`-p 127.0.0.1:PORT:PORT`) needs iptables.
command -v iptables >/dev/null 2>&1 || [[ -x /usr/sbin/iptables ]] || want+=(iptables)
have_static_busybox || want+=(busybox-static)
if ((${#want[@]})); then
    is_root || skip "${want[*]} not installed and not root to install"
    command -v apt-get >/dev/null 2>&1 || skip "${want[*]} not installed and no apt-get"
    # --no-install-recommends leaves out what rootful podman does not need
    # (buildah, fuse-overlayfs, slirp4netns, uidmap, dbus-user-session);
    # catatonit, also a recommend, is asked for by name above.
    if ! apt_install "${want[@]}"; then
        tail -n 5 "$log" >&2
        command -v podman >/dev/null 2>&1 || skip "apt-get install ${want[*]} failed"
    fi
fi
command -v podman >/dev/null 2>&1 || skip "podman still not on PATH after install"

# Default ulimits: the values below, lowered to the hard limits in force.
clamp() { # clamp WANTED HARD
    if [[ "$2" == unlimited ]] || (( $1 <= $2 )); then echo "$1"; else echo "$2"; fi
}
nofile="$(clamp 20000 "$(ulimit -Hn)")"
nproc="$(clamp 4096 "$(ulimit -Hu)")"
conf=/etc/containers/containers.conf

# Equivalent: the runtime is runc and the default ulimits are exactly ours.
equivalent() {
    [[ -r "$conf" ]] || return 1
    grep -Eq '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"runc"' "$conf" &&
        grep -Eq "^[[:space:]]*default_ulimits[[:space:]]*=[[:space:]]*\\[[[:space:]]*\"nofile=$nofile:$nofile\",[[:space:]]*\"nproc=$nproc:$nproc\"[[:space:]]*,?[[:space:]]*\\]" "$conf"
}

if ! equivalent; then
    is_root || skip "$conf lacks runtime = \"runc\" and default_ulimits, and not root to write it"
    mkdir -p "$(dirname "$conf")"
    if [[ -e "$conf" ]]; then
        cp -p "$conf" "$conf.rocketns-backup"
        echo "podman-env: replacing $conf (previous one kept as $conf.rocketns-backup)" >&2
    fi
    cat >"$conf" <<EOF
# Written by rocketns scripts/podman-env.sh (rewritten when not equivalent).
[containers]
# No higher than the host's hard limits: raising them is refused here.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
# crun refuses hybrid cgroup v1/v2 hosts.
runtime = "runc"
EOF
fi

if ! podman info >"$log" 2>&1; then
    skip "podman info failed: $(tail -n 1 "$log")"
fi
