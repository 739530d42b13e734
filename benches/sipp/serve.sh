# Sourced by the SIPp benchmarks: builds the release binary (and any extra cargo targets in
# $build_extra), starts `rswitch serve` on a fresh SQLite database in a temporary directory
# ($work) with SIP on a free loopback UDP port ($sip_port) and the per-IP message limit
# lifted, and defines `free_port` and `password NUMBER`. The caller sets $root first; the
# server ($server) is killed and $work removed on exit.
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; pkill -P $$ sipp 2>/dev/null || true; rm -rf "$work"' EXIT

# shellcheck disable=SC2086
cargo build --release --bin rswitch ${build_extra:-} --manifest-path "$root/Cargo.toml" >/dev/null
bin=$root/target/release/rswitch
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sip_port=$(free_port)
export RSWITCH_DATA_DIR=$work/data RSWITCH_LOG=warn RSWITCH_HTTP_LISTEN=127.0.0.1:0 \
    RSWITCH_SIP_UDP=127.0.0.1:$sip_port RSWITCH_SIP_TCP=127.0.0.1:0 RSWITCH_SIP_WS=127.0.0.1:0
mkdir -p "$work/data"
printf '[sip]\nmax_messages_per_sec_per_ip = 10000000\n' >"$work/rswitch.toml"
"$bin" serve --config "$work/rswitch.toml" >"$work/server.log" 2>&1 &
server=$!
sleep 3
password() { "$bin" extensions list --format csv 2>/dev/null | awk -F, -v n="$1" '$1==n{print $4}'; }

# Registers 1001 from a free port and starts the callee answering CALLS calls there
# (tests/sipp/call/uas_answer.xml); $callee_port, $uas.
start_callee() {
    local calls=$1 seconds=$2
    printf 'SEQUENTIAL\n1001;[authentication username=1001 password=%s];1000\n' "$(password 1001)" >"$work/callee.csv"
    printf 'SEQUENTIAL\n1000;[authentication username=1000 password=%s];1001\n' "$(password 1000)" >"$work/caller.csv"
    callee_port=$(free_port)
    (cd "$work" && sipp "127.0.0.1:$sip_port" -sf "$root/tests/sipp/call/register.xml" -inf callee.csv \
        -m 1 -i 127.0.0.1 -p "$callee_port" -nostdin -timeout 10s -timeout_error >/dev/null)
    (cd "$work" && exec sipp "127.0.0.1:$sip_port" -sf "$root/tests/sipp/call/uas_answer.xml" -m "$calls" \
        -i 127.0.0.1 -p "$callee_port" -buff_size 8388608 -nostdin \
        -timeout $((seconds + 60))s >uas.out 2>&1) &
    uas=$!
    sleep 1
}
