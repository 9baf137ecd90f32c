#!/bin/sh
# Side-by-side TURN relay benchmark on loopback: `floe server --workers 1` against coturn's
# `turnserver -m 1`, same users, ports and generator (examples/turn_load.rs), each server
# pinned to CPU 0 and the generator to CPU 1. Repeats RUNS times, alternating the servers,
# and prints every run as JSON plus the medians.
#
#   crates/floe/examples/turn_bench.sh                 # 3 runs of 10 s, both send modes
#   RUNS=5 DURATION=20 MODES=plain crates/floe/examples/turn_bench.sh
#   SKIP_BUILD=1 ...                                    # use the binaries already built
#
# MODES: "plain" (one sendmsg per datagram from the generator) and/or "gso" (the generator
# sends bursts of 32 as one GSO sendmsg). RATE=N offers N packets/s per direction instead of
# as many as the generator can send. QUIET=N waits (up to 10 minutes) before each run
# until the machine was less than N% busy for a second; every run records how busy it was,
# and a run during which other processes took more than MAX_OTHER CPU seconds (default: 15%
# of the run; a quiet machine shows ~0.1 s per second of run: softirq work charged to no
# process) is run again, up to 7 times.
# Needs taskset and coturn (turnserver).
set -eu

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
MODES=${MODES:-"plain gso"}
FLOE_PORT=${FLOE_PORT:-3478}
COTURN_PORT=${COTURN_PORT:-3479}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TARGET=${CARGO_TARGET_DIR:-target}/release
QUIET=${QUIET:-}
RATE=${RATE:-0}
MAX_OTHER=${MAX_OTHER:-$(awk "BEGIN {print $DURATION * 0.15}")}

# Percent of all CPUs busy over one second.
busy() {
    a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{t = 0; for (i = 2; i <= NF; i++) t += $i; idle = $5 + $6
        if (NR == 1) { t1 = t; i1 = idle } else printf "%.0f", 100 * ((t - t1) - (idle - i1)) / (t - t1) }'
}

wait_quiet() {
    [ -z "$QUIET" ] && return 0
    tries=0
    while [ "$(busy)" -ge "$QUIET" ] && [ $tries -lt 600 ]; do tries=$((tries + 1)); done
}

[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p floe --bin floe --example turn_load
OUT=$(mktemp)

start_floe() {
    taskset -c "$SERVER_CPU" "$TARGET/floe" server --listen "127.0.0.1:$FLOE_PORT" \
        --realm floe.test --user alice:wonderland --allow-loopback-peers \
        --relay-ports 40000-49999 --workers 1 >/dev/null 2>&1 &
    echo $!
}

start_coturn() {
    taskset -c "$SERVER_CPU" turnserver -n --no-cli --no-tls --no-dtls --no-stdout-log \
        --log-file /dev/null --simple-log --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 \
        --listening-port "$COTURN_PORT" --min-port 40000 --max-port 49999 \
        --lt-cred-mech --fingerprint --allow-loopback-peers --realm floe.test \
        --user alice:wonderland -m 1 >/dev/null 2>&1 &
    echo $!
}

for run in $(seq "$RUNS"); do
    for mode in $MODES; do
        for server in floe coturn; do
            for attempt in 1 2 3 4 5 6 7 8; do
                wait_quiet
                before=$(busy)
                if [ "$server" = floe ]; then pid=$(start_floe); port=$FLOE_PORT
                else pid=$(start_coturn); port=$COTURN_PORT; fi
                sleep 1
                gso=""; [ "$mode" = gso ] && gso="--gso"
                load=$(cut -d' ' -f1-3 /proc/loadavg)
                line=$(taskset -c "$LOAD_CPU" "$TARGET/examples/turn_load" \
                    --server "127.0.0.1:$port" --duration "$DURATION" --warmup 1 \
                    --server-pid "$pid" --server-core "$SERVER_CPU" --rate "$RATE" --json $gso \
                    || echo '{}')
                kill "$pid"; wait "$pid" 2>/dev/null || true
                other=$(echo "$line" | sed -n 's/.*"other_cpu_s":\([-0-9.]*\).*/\1/p')
                awk "BEGIN {exit !(${other:-0} <= $MAX_OTHER)}" && break
                echo "run $run $server $mode: other load ${other}s, again" >&2
            done
            echo "{\"run\":$run,\"server\":\"$server\",\"mode\":\"$mode\",\"load\":\"$load\",\"busy_before\":$before,\"result\":$line}" | tee -a "$OUT"
        done
    done
done

# Medians per server and mode.
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "n/a"}'; }
echo
printf '%-7s %-6s %12s %16s %16s\n' server mode relayed_pps cpu_s_per_Mpkt core_s_per_Mpkt
for mode in $MODES; do
    for server in floe coturn; do
        rows=$(grep "\"server\":\"$server\",\"mode\":\"$mode\"" "$OUT")
        pps=$(echo "$rows" | field relayed_pps | median)
        cpu=$(echo "$rows" | field server_cpu_s_per_million | median)
        core=$(echo "$rows" | field core_busy_s_per_million | median)
        printf '%-7s %-6s %12s %16s %16s\n' "$server" "$mode" "$pps" "$cpu" "$core"
    done
done
rm -f "$OUT"
