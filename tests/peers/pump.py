#!/usr/bin/env python3
"""Wire two ICE peers that signal with SDP lines on stdin/stdout (`floe ice`,
tests/peers/aioice_peer.py), and time them.

Both commands start at once; every stdout line starting with `a=` goes to the other peer's
stdin, status lines (CONNECTED, SENT, RECEIVED, ECHOED, FAILED) are printed with the
milliseconds since start. With --runs N it repeats and prints the median time from start
to the first ECHOED line (the "process start to echo" figure of docs/BENCHMARKS.md).

    tests/peers/pump.py --runs 20 \
        --a 'target/release/floe ice --controlling --send hello --linger 0 --host-ip 192.0.2.2' \
        --b 'target/release/floe ice --controlled --echo --linger 0.2 --host-ip 192.0.2.2'

Every process is killed by PID after --timeout seconds at the latest.
"""

import argparse
import shlex
import statistics
import subprocess
import sys
import threading
import time


def run_once(cmd_a, cmd_b, timeout, quiet):
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            shlex.split(cmd),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        for cmd in (cmd_a, cmd_b)
    ]
    echoed = []
    lock = threading.Lock()

    def pump(i):
        src, dst = procs[i], procs[1 - i]
        for line in src.stdout:
            if line.startswith("a="):
                try:
                    dst.stdin.write(line)
                    dst.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
                continue
            ms = (time.monotonic() - start) * 1000
            with lock:
                if line.startswith("ECHOED") and not echoed:
                    echoed.append(ms)
                if not quiet:
                    print(f"{ms:8.1f} ms  {'ab'[i]}: {line.rstrip()}", flush=True)

    threads = [threading.Thread(target=pump, args=(i,), daemon=True) for i in (0, 1)]
    for t in threads:
        t.start()
    codes = []
    for p in procs:
        left = max(0.0, start + timeout - time.monotonic())
        try:
            codes.append(p.wait(timeout=left))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    for t in threads:
        t.join(timeout=1)
    return codes, (echoed[0] if echoed else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="the first peer's command line")
    ap.add_argument("--b", required=True, help="the second peer's command line")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    times = []
    for _ in range(args.runs):
        codes, echoed = run_once(args.a, args.b, args.timeout, args.runs > 1)
        if args.runs == 1:
            print(f"exit codes: a={codes[0]} b={codes[1]}")
        if echoed is None or codes != [0, 0]:
            print(f"run failed: exit codes {codes}, echo at {echoed}", file=sys.stderr)
            return 1
        times.append(echoed)
    if args.runs > 1:
        ts = sorted(times)
        print(
            f"start to echo over {len(ts)} runs: median {statistics.median(ts):.1f} ms, "
            f"min {ts[0]:.1f} ms, max {ts[-1]:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
