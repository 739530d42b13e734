#!/usr/bin/env bash
# INVITE -> 180 latency through rswitch: SIPp caller -> rswitch -> SIPp callee, no media.
#
# usage: benches/sipp/latency.sh [RATE] [SECONDS]   (default 200 calls per second, 30 s)
#
# Like cps.sh (release binary, fresh SQLite database, callee 1001 registered and answering
# with tests/sipp/call/uas_answer.xml: 180 at once, 200 after 300 ms), but the caller is
# benches/sipp/uac_latency.xml: SIPp measures, for every call, the time from sending the
# authenticated INVITE to receiving the 180 that rswitch relays from the callee (two SIP
# hops through rswitch and the callee's own turn-around). Prints the count, p50, p90, p99
# and the maximum in milliseconds.
set -euo pipefail

rate=${1:-200}
seconds=${2:-30}
calls=$((rate * seconds))
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=benches/sipp/serve.sh
. "$root/benches/sipp/serve.sh"
start_callee "$calls" "$seconds"
cd "$work"
sipp "127.0.0.1:$sip_port" -sf "$root/benches/sipp/uac_latency.xml" -inf caller.csv -m "$calls" \
    -r "$rate" -l $((rate * 10)) -i 127.0.0.1 -p 0 -buff_size 8388608 -nostdin \
    -trace_rtt -rtt_freq 1 -timeout $((seconds + 60))s >uac.out 2>&1 || true
wait "$uas" || true
python3 - "$rate" "$seconds" ./*_rtt.csv <<'PY'
import sys
rate, seconds, files = sys.argv[1], sys.argv[2], sys.argv[3:]
values = []
for name in files:
    for line in open(name):
        cells = line.strip().split(";")
        # Date_ms;response_time_ms;rtd_no — the header and other lines do not parse.
        try:
            values.append(float(cells[1]))
        except (IndexError, ValueError):
            pass
values.sort()
if not values:
    sys.exit("no response times measured")
pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
print(f"rate {rate}/s for {seconds} s: {len(values)} calls, INVITE->180 "
      f"p50 {pick(0.50):.2f} ms, p90 {pick(0.90):.2f} ms, p99 {pick(0.99):.2f} ms, "
      f"max {values[-1]:.2f} ms")
# SIPp reads a coarse clock (CLOCK_MONOTONIC_COARSE: one tick is 4 ms at HZ=250), so the
# values are multiples of a tick: show how many calls fell in each.
counts = {}
for v in values:
    counts[v] = counts.get(v, 0) + 1
print("distribution (ms: calls): " + ", ".join(f"{k:g}: {c}" for k, c in sorted(counts.items())))
PY
