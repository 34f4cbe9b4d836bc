#!/usr/bin/env bash
# natpass side by side with Linux nftables NAT in one run, on the netns benchmark harness of
# the team's shared folder (PERF_DIR, default ../shared/perf: a C traffic generator, a
# three-namespace topology, CPU pinning, and an `ext` slot for an external router).
#
#   bench/netns.sh [RUNS=5]
#
# Runs, interleaved mode by mode (nat ext nat ext ...):
#   - UDP 64-byte payload, 1 flow and 100 000 flows, as fast as the generator goes;
#   - iperf3 TCP, 1 stream, offloads off (natpass handles MTU-sized frames);
# then writes bench/results/<stamp>.csv and prints the summary (median, min, max).
# Needs root. Not a CI test: numbers depend on the machine and on other tenants.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
PERF_DIR=${PERF_DIR:-$(cd .. && pwd)/shared/perf}
if [ ! -x "$PERF_DIR/bench.sh" ]; then
  echo "bench: SKIPPED: no harness at $PERF_DIR (set PERF_DIR)" >&2
  exit 0
fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p natpass
bin="$(pwd)/target/release/natpass"
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
conf="$(pwd)/bench/results/natpass-$stamp.toml"
# The harness's router attachment points: veth-lan 192.168.50.1, veth-wan 198.51.100.1.
cat > "$conf" <<TOML
[interfaces.lan]
name = "veth-lan"
address = "192.168.50.1/24"

[interfaces.wan]
name = "veth-wan"
address = "198.51.100.1/24"

[nat]
max_sessions = 262144
max_sessions_per_host = 262144

[admin]
listen = "off"
TOML
# natpass owns its addresses: take them off the kernel in the router namespace first.
export EXT_CMD="ip addr flush dev veth-lan; ip addr flush dev veth-wan; exec $bin run --config $conf"
results="$(pwd)/bench/results/$stamp.csv"
export RESULTS="$results" TAG="natpass-$(git rev-parse --short HEAD)"
(cd "$PERF_DIR" && ./install_deps.sh >/dev/null && ./build.sh >/dev/null)
"$PERF_DIR/bench.sh" compare "nat ext" 1 "$RUNS"
"$PERF_DIR/bench.sh" compare "nat ext" 100000 "$RUNS"
"$PERF_DIR/bench.sh" compare-tcp "nat ext" 1 "$RUNS"
"$PERF_DIR/report.sh" "$results" | tee "bench/results/$stamp.md"
