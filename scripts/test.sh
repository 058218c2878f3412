#!/usr/bin/env bash
# The whole test suite, with its own set-up: the C++ client's virtualenv
# (skipped with a printed reason when it cannot be installed), then cargo.
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

cargo test --all-targets "$@"
