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
#
# SIPp's clock is coarse (4 ms ticks), so when tshark is installed (Debian `tshark`; the
# benchmark only, not the tests) the SIP packets on loopback are also captured with
# microsecond timestamps and the script prints, per call: the time from the authenticated
# INVITE reaching rswitch to the 180 leaving it, the callee's own turn-around (rswitch's
# INVITE out to the callee's 180 in), and their difference: rswitch's own share (two passes
# through it). The two legs are paired in order: rswitch's SIP task handles requests one by
# one, so its B-leg INVITEs leave in the order the A-leg INVITEs came.
set -euo pipefail

rate=${1:-200}
seconds=${2:-30}
calls=$((rate * seconds))
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=benches/sipp/serve.sh
. "$root/benches/sipp/serve.sh"
start_callee "$calls" "$seconds"
cd "$work"
capture=
if command -v tshark >/dev/null; then
    tshark -q -i lo -f "udp port $sip_port" -w "$work/sip.pcap" >/dev/null 2>&1 &
    capture=$!
    sleep 2
fi
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
if [ -n "$capture" ]; then
    sleep 1
    kill -INT "$capture"
    wait "$capture" || true
    tshark -r "$work/sip.pcap" -d "udp.port==$sip_port,sip" -Y sip -T fields -E separator=';' \
        -e frame.time_epoch -e udp.srcport -e udp.dstport -e sip.Method -e sip.Status-Code \
        -e sip.CSeq -e sip.Call-ID >"$work/sip.txt" 2>/dev/null
    python3 - "$sip_port" "$callee_port" "$work/sip.txt" <<'PY'
import sys
sip_port, callee_port, name = sys.argv[1], sys.argv[2], sys.argv[3]
a_invite, a_ringing, b_invite, b_ringing = {}, {}, {}, {}
for line in open(name):
    cells = line.rstrip("\n").split(";")
    if len(cells) < 7:
        continue
    t, src, dst, method, status, cseq, call_id = cells[:7]
    t = float(t)
    if dst == sip_port and src != callee_port and method == "INVITE" and cseq.startswith("2 "):
        a_invite.setdefault(call_id, t)
    elif src == sip_port and dst != callee_port and status == "180":
        a_ringing.setdefault(call_id, t)
    elif src == sip_port and dst == callee_port and method == "INVITE":
        b_invite.setdefault(call_id, t)
    elif src == callee_port and dst == sip_port and status == "180":
        b_ringing.setdefault(call_id, t)
a = sorted((t, a_ringing[c] - t) for c, t in a_invite.items() if c in a_ringing)
b = sorted((t, b_ringing[c] - t) for c, t in b_invite.items() if c in b_ringing)
if not a:
    sys.exit("the capture holds no INVITE/180 pairs")
def line(label, values):
    values = sorted(v * 1000 for v in values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    print(f"{label}: {len(values)} calls, p50 {pick(0.5):.3f} ms, p90 {pick(0.9):.3f} ms, "
          f"p99 {pick(0.99):.3f} ms, max {values[-1]:.3f} ms")
line("capture, INVITE in -> 180 out at rswitch", [d for _, d in a])
line("capture, callee turn-around (INVITE out -> 180 in)", [d for _, d in b])
if len(a) == len(b):
    line("capture, rswitch's own share (two passes)", [da - db for (_, da), (_, db) in zip(a, b)])
else:
    print(f"legs not paired ({len(a)} A-leg, {len(b)} B-leg): no per-call share")
PY
fi
