#!/usr/bin/env bash
# Where natpass spends its time under load: one UDP run of the netns harness (PERF_DIR, default
# ../shared/perf) with natpass in its `ext` slot, sampled with `perf record -g` (cpu-clock: this
# VM has no hardware PMU). Writes bench/results/profile-<flows>.txt.
#
#   bench/profile.sh [FLOWS=100000] [SECONDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
flows=${1:-100000}; secs=${2:-5}
PERF_DIR=${PERF_DIR:-$(cd .. && pwd)/shared/perf}
[ -x "$PERF_DIR/bench.sh" ] || { echo "profile: SKIPPED: no harness at $PERF_DIR" >&2; exit 0; }
command -v perf >/dev/null || { echo "profile: install linux-perf" >&2; exit 1; }
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p natpass
bin="$(pwd)/target/release/natpass"
mkdir -p bench/results
conf="$(pwd)/bench/results/natpass-profile.toml"
printf '[interfaces.lan]\nname = "veth-lan"\naddress = "192.168.50.1/24"\n[interfaces.wan]\nname = "veth-wan"\naddress = "198.51.100.1/24"\n[nat]\nmax_sessions = 262144\nmax_sessions_per_host = 262144\n[admin]\nlisten = "off"\n' > "$conf"
export EXT_CMD="ip addr flush dev veth-lan; ip addr flush dev veth-wan; exec $bin run --config $conf"
export RESULTS=/tmp/natpass-profile.csv MEAS=$((secs + 4)) QUIET_WAIT=20
"$PERF_DIR/bench.sh" udp ext "$flows" 1 > /tmp/natpass-profile-bench.log 2>&1 &
bench=$!
pid=""
for _ in $(seq 1 300); do
  pid=$(pgrep -n -f "$bin run --config $conf" || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "profile: natpass did not start"; wait "$bench"; exit 1; }
sleep 3   # past the warm-up
perf record -F 997 -g -p "$pid" -o /tmp/natpass-perf.data -- sleep "$secs" 2>/dev/null
wait "$bench" || true
out="bench/results/profile-$flows.txt"
{
  echo "# natpass under UDP load, $flows flows: perf record -F 997 -g, $(date -u +%F), $(uname -r), $(nproc) CPUs"
  grep "udp ext" /tmp/natpass-profile-bench.log || true
  perf report -i /tmp/natpass-perf.data --no-children --percent-limit 1 --stdio --sort symbol -g none 2>/dev/null | grep -v "^$"
} > "$out"
cat "$out"
