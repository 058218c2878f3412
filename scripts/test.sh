#!/usr/bin/env bash
# The whole test suite, with its own set-up: podman for the container test,
# the deployment linters (which must pass), the C++ client's virtualenv
# (each skipped with a printed reason only where it cannot be installed),
# then cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -x scripts/test-env.sh ]]; then
    env_out="$(scripts/test-env.sh)" || env_out="SKIP: scripts/test-env.sh failed"
    last="$(printf '%s\n' "$env_out" | tail -n 1)"
    case "$last" in
        SKIP:*) echo "$last" ;;
        *) export ROCKETNS_TEST_PYTHON="$last" ;;
    esac
fi

# podman: tests/container.rs skips with a reason if it is still missing.
scripts/podman-env.sh || echo "SKIP podman: scripts/podman-env.sh failed"
# Dockerfile, manifests and seccomp profile: a finding fails the suite.
scripts/lint-deploy.sh
# A Python with PyYAML for scripts/kube-pod.py (tests/container.rs renders
# the StatefulSet's pod for podman kube play); the linters' venv has one.
for py in ${ROCKETNS_YAML_PYTHON:-} python3 /usr/bin/python3 \
    "${ROCKETNS_LINT_VENV:-$PWD/target/lint-venv}/bin/python"; do
    if "$py" -c 'import yaml' >/dev/null 2>&1; then
        ROCKETNS_YAML_PYTHON="$(command -v "$py")"
        export ROCKETNS_YAML_PYTHON
        break
    fi
done

# Tests that cannot run here append their reason to this file; libtest
# would otherwise keep it to itself.
ROCKETNS_SKIP_LOG="$PWD/target/test-skips.log"
export ROCKETNS_SKIP_LOG
mkdir -p target
rm -f "$ROCKETNS_SKIP_LOG"
status=0
# --features load: the load generator and tests/load.rs, which the
# server's own build leaves out (Cargo.toml).
cargo test --all-targets --features load "$@" || status=$?
if [[ -s "$ROCKETNS_SKIP_LOG" ]]; then
    echo "Tests skipped here, and why:"
    cat "$ROCKETNS_SKIP_LOG"
fi
exit "$status"
