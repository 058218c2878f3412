#!/usr/bin/env bash
# Lookup latency on one shard while each abuse runs, against the same
# lookups with no abuse, in one run (issue 15): `rocketns-load abuse`
# against rocketns with one shard.
#
#   scripts/abuse-bench.sh [--duration S] [--gap S] [--out DIR] [--no-pin]
#                          [-- EXTRA rocketns-load abuse ARGS...]
#
# Builds the release binaries and runs two cases, each against a fresh
# rocketns (one shard, files in a temp dir, the HTTP side on a free port
# for its metrics, the limits the phases need): `closed-loop`, the
# measuring client as fast as its replies come, and `paced-5k`, the same
# client paced at 5,000 lookups/s. Each case samples the server's
# counters, threads' CPU and memory per phase, then stops the server.
# Writes DIR (default benches/results/<date>-<commit>-abuse/):
# runs.jsonl (one JSON line per phase and case), human-CASE.txt (the
# client's output), metrics-end-CASE.txt, server-log-excerpt-CASE.txt,
# summary.md. With 2 or more usable CPUs the client is pinned to the first
# and the server to the second, as scripts/bench.sh does. About 3 min with
# the default 10 s phases.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 gap=2 warmup=2 out="" pin=1 extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) duration="$2"; shift ;;
        --gap) gap="$2"; shift ;;
        --out) out="$2"; shift ;;
        --no-pin) pin=0 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

# The server's limits. A cap of 400 connections holds the measuring
# client (10), its broker (1) and the 300 slow readers, and leaves the
# flood about 90 places before it is refused. topicsMax=1000 refuses the
# large compressed registration after it was inflated and decoded. An idle
# timeout of 5 s closes slow readers inside a 10 s phase (they reconnect).
server_limits=(--connectionsMaxPerShard 400 --topicsMax 1000 --serverChannelMaxIdleTimeSeconds 5)

cargo build --release --features load --bin rocketns-load --bin rocketns --quiet
bin="$PWD/target/release"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
out="${out:-benches/results/$(date +%Y-%m-%d)-$commit-abuse}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
server_pid=""

# The server's log without its bulk: each 318 of the large-frames phase
# logs one line per unknown key (300,000 per request).
server_log=""
log_excerpt() { # NAME
    local unknown='unknown key, not in the property set'
    {
        grep -v "$unknown" "$server_log" | head -n 200 || true
        echo "... and $(grep -c "$unknown" "$server_log" || true) lines like these (all $(wc -l < "$server_log") lines: $(wc -c < "$server_log") bytes):"
        grep -m 3 "$unknown" "$server_log" || true
    } > "$out/server-log-excerpt-$1.txt"
}
# Bounded stop: SIGTERM, then SIGKILL after 10 s.
stop_server() {
    [[ -n "$server_pid" ]] || return 0
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
cleanup() {
    stop_server
    [[ -n "$server_log" && -f "$server_log" ]] && log_excerpt failed
    rm -rf "$work"
}
trap cleanup EXIT

cli=() srv=() placement="client and server placed by the scheduler"
if [[ $pin == 1 ]] && command -v taskset >/dev/null; then
    list="$(taskset -pc $$ | sed 's/.*: *//')"
    usable=()
    for part in ${list//,/ }; do
        if [[ $part == *-* ]]; then mapfile -t -O "${#usable[@]}" usable < <(seq "${part%-*}" "${part#*-}"); else usable+=("$part"); fi
    done
    if ((${#usable[@]} >= 2)); then
        cli=(taskset -c "${usable[0]}") srv=(taskset -c "${usable[1]}")
        placement="client (both its executor threads) pinned to CPU ${usable[0]}, server to CPU ${usable[1]}"
    fi
fi
echo "$placement"

# Busy share of each CPU over 2 s, from /proc/stat ("cpu0 3% cpu1 1%").
cpu_busy() {
    local a b
    a="$(grep '^cpu[0-9]' /proc/stat)"; sleep 2; b="$(grep '^cpu[0-9]' /proc/stat)"
    paste <(echo "$a") <(echo "$b") | awk '{
        n = (NF - 2) / 2; t1 = 0; t2 = 0
        for (i = 2; i <= 9; i++) t1 += $i
        for (i = n + 3; i <= n + 10; i++) t2 += $i
        i1 = $5 + $6; i2 = $(n + 6) + $(n + 7)
        printf "%s %d%% ", $1, ((t2 - t1) - (i2 - i1)) * 100 / ((t2 - t1) > 0 ? (t2 - t1) : 1)
    }'
}
# The machine is shared: wait up to 5 min for other work to leave the
# CPUs (every CPU under 10 % busy) so it is not measured with ours.
wait_quiet() {
    local busy
    for _ in $(seq 60); do
        busy="$(cpu_busy)"
        if ! echo "$busy" | grep -qE '([1-9][0-9]|100)%'; then break; fi
        echo "machine busy ($busy), waiting" >&2
        sleep 3
    done
    quiet="$busy"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# One case: a fresh server, one `rocketns-load abuse` run against it, its
# end-of-run memory and counters, the server stopped.
run_case() { # NAME EXTRA-CLIENT-ARGS...
    local name="$1"; shift
    wait_quiet
    local port http addr metrics
    port="$(free_port)" http="$(free_port)"
    addr="127.0.0.1:$port" metrics="127.0.0.1:$http"
    rm -rf "$work/$name"; mkdir -p "$work/$name"
    local dir="$work/$name"
    server_args=(--shardCount 1 --listenPort "$port" --bindAddress 127.0.0.1 --httpListenPort "$http"
        --rocketmqHome "$dir" --kvConfigPath "$dir/kv.json" --configStorePath "$dir/ns.properties"
        "${server_limits[@]}")
    server_log="$dir/server.log"
    "${srv[@]}" "$bin/rocketns" "${server_args[@]}" > "$server_log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do
        bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$server_log" >&2; exit 1; }
        sleep 0.1
    done

    client_args=(abuse --addr "$addr" --duration-secs "$duration" --gap-secs "$gap" --warmup-secs "$warmup"
        --metrics-addr "$metrics" --server-pid "$server_pid" --label rocketns --case "$name" --json
        "$@" "${extra[@]}")
    echo "== $name: rocketns-load ${client_args[*]}"
    "${cli[@]}" "$bin/rocketns-load" "${client_args[@]}" > "$dir/client.out"
    grep -v '^{' "$dir/client.out" > "$out/human-$name.txt"
    grep '^{' "$dir/client.out" >> "$out/runs.jsonl"

    curl -fsS "http://$metrics/metrics" > "$out/metrics-end-$name.txt" || echo "scrape failed" > "$out/metrics-end-$name.txt"
    local hwm rss
    hwm="$(awk '/VmHWM/ {print $2, $3}' "/proc/$server_pid/status")"
    rss="$(awk '/VmRSS/ {print $2, $3}' "/proc/$server_pid/status")"
    metric() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {print s + 0}' "$out/metrics-end-$name.txt"; }
    stop_server
    log_excerpt "$name"
    local log_lines log_bytes unknown_lines
    log_lines="$(wc -l < "$server_log")" log_bytes="$(wc -c < "$server_log")"
    unknown_lines="$(grep -c 'unknown key, not in the property set' "$server_log" || true)"
    {
        echo "## $name"
        echo
        echo "Server: \`rocketns ${server_args[*]}\` (ports and paths of this run)."
        echo
        echo "Client: \`rocketns-load ${client_args[*]}\`"
        echo
        echo "CPUs busy just before the case (other tenants): $quiet."
        echo
        echo "Server at the end of the run: peak resident memory (VmHWM) $hwm, resident $rss;"
        echo "rocketns_buffer_bytes $(metric rocketns_buffer_bytes), rocketns_budget_paused_total $(metric rocketns_budget_paused_total),"
        echo "rocketns_slow_reader_closed_total $(metric rocketns_slow_reader_closed_total), rocketns_offloaded_frames_total $(metric rocketns_offloaded_frames_total),"
        echo "rocketns_connections_refused_total $(metric rocketns_connections_refused_total), rocketns_idle_closed_total $(metric rocketns_idle_closed_total)."
        echo "Server log: $log_lines lines, $log_bytes bytes; $unknown_lines of them are 318's \"unknown key\" lines (server-log-excerpt-$name.txt)."
        echo
        cat "$out/human-$name.txt"
        echo
    } >> "$out/summary.md"
    rm -rf "$dir"
    server_log=""
}

: > "$out/runs.jsonl"
{
    echo "# rocketns under abuse, commit $commit, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r); $placement."
    echo "Each case starts its own server. Lookups are counted in the phase they were sent in."
    echo
} > "$out/summary.md"

# The issue's load: closed loop, as fast as the replies come. Server and
# measuring client are both near 100 % of their CPU here, so the abusers
# (niced, on the client's CPU) get only what the measuring client leaves.
run_case closed-loop
# The same lookups paced at 5,000/s: both CPUs have room, so the abusers
# run at full strength and the p99 shows stalls rather than CPU shares.
run_case paced-5k --rate 5000

cat "$out/summary.md"
echo
echo "results in $out"
