#!/usr/bin/env bash
# Sets up the virtualenv holding Apache's RocketMQ C++ client (PyPI package
# rocketmq-python-cvs, which ships librocketmq.so with a ctypes wrapper).
# Idempotent. Last line of stdout: the venv's python, or "SKIP: <reason>".
set -euo pipefail

venv="${ROCKETNS_VENV:-$PWD/target/venv}"
py="$venv/bin/python"
skip() { echo "SKIP: $*"; exit 0; }

if [[ ! -x "$py" ]]; then
    base="$(command -v python3 || true)"
    [[ -n "$base" ]] || skip "no python3 on PATH"
    "$base" -m venv "$venv" >&2 || skip "could not create virtualenv at $venv"
fi

if ! "$py" -c 'import rocketmq.client' >/dev/null 2>&1; then
    "$py" -m pip install --quiet --disable-pip-version-check rocketmq-python-cvs >&2 \
        || skip "pip install rocketmq-python-cvs failed"
    "$py" -c 'import rocketmq.client' >/dev/null 2>&1 \
        || skip "rocketmq-python-cvs installed but 'import rocketmq.client' fails"
fi

echo "$py"
