#!/usr/bin/env bash
# Concurrent relayed calls with RTP through rswitch.
#
# usage: benches/sipp/relay.sh CALLS [HOLD_SECONDS]   (default hold 60 s)
#
# Builds the release binary and the load generator (examples/relay_load.rs), starts
# rswitch on a fresh SQLite database, and runs the generator: it registers extension 1001,
# places CALLS calls from 1000 (digest auth) at up to 200 per second, answers them as 1001,
# and sends PCMU RTP both ways on every call (50 packets/s per direction, relayed
# pass-through by rswitch) for HOLD_SECONDS. It prints the packets lost at the receivers,
# rswitch's CPU (cores, and µs per call-second) and its RSS per call (loaded minus idle).
# The generator runs on the same machine: past the machine's capacity its own lateness is
# reported as "late ticks".
set -euo pipefail

calls=${1:?usage: benches/sipp/relay.sh CALLS [HOLD_SECONDS]}
hold=${2:-60}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export RSWITCH_RTP_PORTS=20000-59999
build_extra="--example relay_load"
# shellcheck source=benches/sipp/serve.sh
. "$root/benches/sipp/serve.sh"
ulimit -n 65536 2>/dev/null || true
"$root/target/release/examples/relay_load" "127.0.0.1:$sip_port" "$(password 1000)" \
    "$(password 1001)" "$calls" "$hold" "$server"
