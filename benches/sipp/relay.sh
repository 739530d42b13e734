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
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --bin rswitch --example relay_load --manifest-path "$root/Cargo.toml" >/dev/null
bin=$root/target/release/rswitch
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sip_port=$(free_port)
export RSWITCH_DATA_DIR=$work/data RSWITCH_LOG=warn RSWITCH_HTTP_LISTEN=127.0.0.1:0 \
    RSWITCH_SIP_UDP=127.0.0.1:$sip_port RSWITCH_SIP_TCP=127.0.0.1:0 RSWITCH_SIP_WS=127.0.0.1:0 \
    RSWITCH_RTP_PORTS=20000-59999
mkdir -p "$work/data"
cat >"$work/rswitch.toml" <<CONF
[sip]
max_messages_per_sec_per_ip = 10000000
CONF
"$bin" serve --config "$work/rswitch.toml" >"$work/server.log" 2>&1 &
server=$!
sleep 3
password() { "$bin" extensions list --format csv 2>/dev/null | awk -F, -v n="$1" '$1==n{print $4}'; }
ulimit -n 65536 2>/dev/null || true
"$root/target/release/examples/relay_load" "127.0.0.1:$sip_port" "$(password 1000)" \
    "$(password 1001)" "$calls" "$hold" "$server"
