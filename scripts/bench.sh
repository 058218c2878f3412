#!/usr/bin/env bash
# The standard benchmark matrix, with rocketns-load, in one run:
#   rocketns, the fixed responder (the ceiling of this machine and client,
#   DECISIONS 23) and, if given, a peer NameServer, over the same cases.
#
#   scripts/bench.sh [--quick] [--duration S] [--out DIR]
#                    [--peer-bin PATH | --peer-cmd 'CMD {port} {dir}' | --peer-addr HOST:PORT]
#                    [--no-netns] [--no-pin]
#
# --peer-bin takes rocketmq-namesrv-rust's flags (cargo install
# rocketmq-namesrv). As root, everything runs inside a fresh network
# namespace that has only loopback (the Rust port probes its host's first
# non-loopback address), and the namespace is removed at the end.
# With 2 or more usable CPUs, the load generator runs on the first and
# every server (rocketns, the responder, the peer) on the others, so client
# and server never take each other's core; --no-pin lets the scheduler
# place them. The responder is one thread: beyond 2 CPUs it is no longer a
# ceiling for a server that uses several.
# Writes DIR/runs.jsonl (one JSON line per run), DIR/table.md, DIR/plot-*.svg
# and DIR/summary.md. Every run is bounded; the whole matrix takes about
# 12 min with the default 10 s runs (about 3 min with --quick).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 warmup=2 quick=0 out="" peer_cmd="" peer_addr="" netns=1 pin=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 duration=3 warmup=1 ;;
        --duration) duration="$2"; shift ;;
        --out) out="$2"; shift ;;
        --peer-bin) peer_cmd="$2 --listenPort {port} --bindAddress 127.0.0.1 --rocketmqHome {dir}"; shift ;;
        --peer-cmd) peer_cmd="$2"; shift ;;
        --peer-addr) peer_addr="$2"; shift ;;
        --no-netns) netns=0 ;;
        --no-pin) pin=0 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

# The server exactly as `cargo run --release` and `cargo install` build it
# (no features), then the load generator, which needs the "load" feature.
cargo build --release --bin rocketns --quiet
cargo build --release --features load --bin rocketns-load --quiet
bin="$PWD/target/release"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
out="${out:-results/$(date +%Y%m%d-%H%M%S)-$commit}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
runs="$out/runs.jsonl"
: > "$runs"
work="$(mktemp -d)"
pids=()
ns=""

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # Anything still in the namespace (a server that ignored SIGTERM).
    if [[ -n "$ns" ]]; then
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [[ -n "$ns" ]]; then ip netns delete "$ns" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

run=()
if [[ $netns == 1 && $(id -u) == 0 && -z "$peer_addr" ]] && command -v ip >/dev/null; then
    ns="rocketns-bench-$$"
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    run=(ip netns exec "$ns")
    echo "network namespace $ns (loopback only)"
fi
# In the namespace. Background servers are started as "${run[@]}" CMD &,
# never through this function: a backgrounded function is a subshell, and
# killing its pid would leave the server running.
inns() { "${run[@]}" "$@"; }

# CPU placement: cli for the load generator, srv for the server under test,
# from the CPUs this process may use (a cpuset need not start at 0).
usable_cpus() { # the affinity list, one CPU per line
    local list part
    list="$(taskset -pc $$ | sed 's/.*: *//')"
    for part in ${list//,/ }; do
        if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
    done
}
cli=() srv=() placement="client and server placed by the scheduler"
if [[ $pin == 1 ]] && command -v taskset >/dev/null; then
    mapfile -t usable < <(usable_cpus)
    if ((${#usable[@]} >= 2)); then
        others="$(IFS=,; echo "${usable[*]:1}")"
        cli=(taskset -c "${usable[0]}") srv=(taskset -c "$others")
        placement="client pinned to CPU ${usable[0]}, server to CPU $others"
    fi
fi
echo "$placement"

port_up() { # HOST:PORT, waits up to 30 s
    local host="${1%:*}" port="${1##*:}"
    for _ in $(seq 300); do
        inns bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

next_port=19876
start_rocketns() {
    local port=$((next_port++)) dir="$work/rocketns-$next_port"
    mkdir -p "$dir"
    "${run[@]}" "${srv[@]}" "$bin/rocketns" --listenPort "$port" --bindAddress 127.0.0.1 --httpListenPort 0 \
        --rocketmqHome "$dir" --kvConfigPath "$dir/kv.json" \
        --configStorePath "$dir/ns.properties" > "$dir/log" 2>&1 &
    pids+=($!); server_pid=$!; addr="127.0.0.1:$port"
    port_up "$addr"
}
start_fixed() {
    local port=$((next_port++))
    "${run[@]}" "${srv[@]}" "$bin/rocketns-load" serve-fixed --listen "127.0.0.1:$port" --duration-secs 600 \
        > "$work/fixed.log" 2>&1 &
    pids+=($!); server_pid=$!; addr="127.0.0.1:$port"
    port_up "$addr"
}
start_peer() {
    if [[ -n "$peer_addr" ]]; then
        server_pid=""; addr="$peer_addr"; return
    fi
    local port=$((next_port++)) dir="$work/peer-$next_port"
    mkdir -p "$dir"
    local cmd="${peer_cmd//\{port\}/$port}"
    cmd="${cmd//\{dir\}/$dir}"
    # shellcheck disable=SC2086 # the command is words by design
    "${run[@]}" "${srv[@]}" $cmd > "$dir/log" 2>&1 &
    pids+=($!); server_pid=$!; addr="127.0.0.1:$port"
    port_up "$addr"
}
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        # Bounded: a server that ignores SIGTERM is killed after 10 s.
        for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
    return 0
}
rss_mb() { # resident memory of the server process (and its children)
    [[ -n "$server_pid" ]] || { echo "-"; return; }
    local kb=0 p
    for p in $server_pid $(pgrep -P "$server_pid" || true); do
        kb=$((kb + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo $((kb / 1024))
}

load() { # LABEL CASE MODE ARGS...: one run, its JSON line appended
    local label="$1" case="$2" mode="$3"; shift 3
    echo "== $label: $case" >&2
    inns "${cli[@]}" "$bin/rocketns-load" "$mode" --addr "$addr" --label "$label" --case "$case" \
        --duration-secs "$duration" --warmup-secs "$warmup" --json "$@" \
        | tee -a "$work/human.log" | tail -n 1 >> "$runs"
}

# Brokers holding TOPICS topics registered (1,000 per broker, so no
# registration comes near the frame limit), re-registering unchanged.
hold_topics() { # BROKERS SECONDS
    "${run[@]}" "${cli[@]}" "$bin/rocketns-load" register --addr "$addr" --brokers "$1" \
        --topics-per-broker 1000 --period-ms 30000 --churn none \
        --warmup-secs 0 --duration-secs "$2" > "$work/hold.log" 2>&1 &
    pids+=($!); holder=$!
    # Ready when a lookup of every broker's topics verifies.
    for _ in $(seq 60); do
        if inns "$bin/rocketns-load" lookup --addr "$addr" --brokers "$1" \
            --topics-per-broker 1000 --connections 4 --duration-secs 1 --warmup-secs 0 \
            --json 2>/dev/null | tail -n 1 | grep -q '"errors_total":0,'; then
            return 0
        fi
        sleep 1
    done
    echo "topics never became routable" >&2
    return 1
}
release_topics() { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null || true; }

conns=(10 100 1000 10000)
[[ $quick == 1 ]] && conns=(100 10000)
topic_sets=("1k:1" "100k:100")
per_run=$((duration + warmup + 3))
hold_secs=$(( (${#conns[@]} * 2 + 2) * per_run + 120 ))
declare -A rss

lookup_matrix() { # LABEL TOPICSET BROKERS
    local c p
    for c in "${conns[@]}"; do
        for p in 1 8; do
            load "$1" "lookup ${c}x$p $2 topics" lookup --brokers "$3" \
                --topics-per-broker 1000 --connections "$c" --in-flight "$p"
        done
    done
    load "$1" "open loop 20k/s 100 conns $2 topics" lookup --brokers "$3" \
        --topics-per-broker 1000 --connections 100 --rate 20000
}

other_cases() { # LABEL
    load "$1" "storm 2000 conns" storm --connections 2000 --concurrency 100 --missing-pct 100
    # Lookups while 10 brokers re-register, with their topics, idle and churning.
    load "$1" "mixed 100x8, registrations idle" mixed --brokers 10 --topics-per-broker 100 \
        --period-ms 30000 --churn none --connections 100 --in-flight 8
    load "$1" "mixed 100x8, ~300 registrations/s" mixed --brokers 10 --topics-per-broker 100 \
        --period-ms 33 --churn topics --connections 100 --in-flight 8
}

bench_nameserver() { # LABEL START_FN
    local label="$1" set name brokers
    for set in "${topic_sets[@]}"; do
        name="${set%%:*}" brokers="${set##*:}"
        "$2"
        hold_topics "$brokers" "$hold_secs"
        rss["$label $name"]="$(rss_mb)"
        lookup_matrix "$label" "$name" "$brokers"
        release_topics
        stop_server
    done
    "$2"
    other_cases "$label"
    stop_server
}

bench_nameserver rocketns start_rocketns

# The ceiling: the same client against a responder that does no work.
start_fixed
for set in "${topic_sets[@]}"; do
    name="${set%%:*}" brokers="${set##*:}"
    lookup_matrix ceiling "$name" "$brokers"
done
load ceiling "storm 2000 conns" storm --connections 2000 --concurrency 100
stop_server

if [[ -n "$peer_cmd" || -n "$peer_addr" ]]; then
    bench_nameserver peer start_peer
fi

"$bin/rocketns-load" report --input "$runs" --out "$out" > /dev/null

{
    echo "# rocketns benchmark, commit $commit, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r); client: rocketns-load, 1 thread; $placement; ${duration} s per run after ${warmup} s warm-up."
    echo
    echo "Resident memory with the topics registered (MB):"
    for k in "${!rss[@]}"; do echo "- $k topics: ${rss[$k]}"; done | sort
    echo
    cat "$out/table.md"
} > "$out/summary.md"
cat "$out/summary.md"
echo
echo "results in $out"
