#!/usr/bin/env bash
# Calls per second through rswitch: SIPp caller -> rswitch -> SIPp callee, no media.
#
# usage: benches/sipp/cps.sh RATE [SECONDS]
#
# Builds the release binary, starts rswitch on a fresh SQLite database in a temporary
# directory, registers extension 1001 from the callee's port, starts the callee
# (tests/sipp/call/uas_answer.xml: 180, 200, waits for BYE) and then the caller
# (tests/sipp/call/uac_talk.xml: INVITE, 407, INVITE with digest, 200, ACK, 1 s, BYE) at
# RATE calls per second for SECONDS (default 60). Prints SIPp's successful and failed calls,
# the elapsed time, and rswitch's CPU time (user+system from /proc) per call.
set -euo pipefail

rate=${1:?usage: benches/sipp/cps.sh RATE [SECONDS]}
seconds=${2:-60}
calls=$((rate * seconds))
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scenarios=$root/tests/sipp/call
# shellcheck source=benches/sipp/serve.sh
. "$root/benches/sipp/serve.sh"
start_callee "$calls" "$seconds"
cd "$work"
cpu_before=$(awk '{print $14 + $15}' "/proc/$server/stat")
started=$(date +%s.%N)
sipp "127.0.0.1:$sip_port" -sf "$scenarios/uac_talk.xml" -inf caller.csv -m "$calls" -r "$rate" \
    -l $((rate * 10)) -i 127.0.0.1 -p 0 -buff_size 8388608 -nostdin \
    -timeout $((seconds + 60))s >uac.out 2>&1 || true
ended=$(date +%s.%N)
cpu_after=$(awk '{print $14 + $15}' "/proc/$server/stat")
wait "$uas" || true
ticks=$(getconf CLK_TCK)
count() { grep -E "^ +$1" uac.out | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}'; }
ok=$(count "Successful call")
failed=$(count "Failed call")
python3 - "$rate" "$seconds" "$ok" "$failed" "$started" "$ended" "$cpu_before" "$cpu_after" "$ticks" <<'EOF'
import sys
rate, seconds, ok, failed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3] or 0), int(sys.argv[4] or 0)
started, ended = float(sys.argv[5]), float(sys.argv[6])
cpu = (int(sys.argv[8]) - int(sys.argv[7])) / int(sys.argv[9])
elapsed = ended - started
print(f"rate {rate}/s for {seconds} s: {ok} successful, {failed} failed "
      f"({100 * failed / max(1, ok + failed):.3f} %) in {elapsed:.1f} s; "
      f"rswitch CPU {cpu:.1f} s = {cpu / elapsed:.2f} cores, "
      f"{1e6 * cpu / max(1, ok + failed):.0f} µs per call")
EOF
