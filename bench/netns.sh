#!/usr/bin/env bash
# natpass side by side with Linux nftables NAT in one run, on the netns benchmark harness of
# the team's shared folder (PERF_DIR, default ../shared/perf: a C traffic generator, a
# three-namespace topology, CPU pinning, and an `ext` slot for an external router).
#
#   bench/netns.sh [RUNS=5] [BACKENDS="af_packet af_xdp af_xdp_busy"]
#   FLOWS="1 100000" TCP=1 XSK=0 bench/netns.sh ...   (the defaults)
#
# FLOWS: the UDP flow counts to measure; TCP=0 leaves the TCP runs out; XSK=1 adds the
# harness's own C AF_XDP forwarder (`xsk`: copy mode, no NAT) to each round, the ceiling of
# an AF_XDP router on this machine.
#
# Runs, interleaved run by run (nat, natpass on AF_PACKET, on AF_XDP, on AF_XDP with busy
# polling, nat, ...):
#   - UDP 64-byte payload, 1 flow and 100 000 flows, as fast as the generator goes;
#   - iperf3 TCP, 1 stream, offloads off (natpass handles MTU-sized frames);
# then writes bench/results/<stamp>.csv and prints the summary (median, min, max); the rows
# of each backend carry the tag natpass-<backend>-<commit>. AF_XDP runs through
# bench/xdp-ext.sh, which pins the router veths' threaded NAPI to the router CPU, as the
# harness does for its own AF_XDP baseline.
# Needs root. Not a CI test: numbers depend on the machine and on other tenants.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
BACKENDS=${2:-af_packet af_xdp af_xdp_busy}
FLOWS=${FLOWS:-1 100000}
TCP=${TCP:-1}
XSK=${XSK:-0}
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
# The harness's router attachment points: veth-lan 192.168.50.1, veth-wan 198.51.100.1.
write_conf() { # backend file   (af_xdp_busy: af_xdp with busy_poll = true)
  local busy=false
  [ "$1" = af_xdp_busy ] && busy=true
  cat > "$2" <<TOML
[interfaces]
backend = "${1%_busy}"
busy_poll = $busy

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
}
# natpass owns its addresses: take them off the kernel in the router namespace first.
flush="ip addr flush dev veth-lan; ip addr flush dev veth-wan"
ext_cmd() { # backend
  local conf="$(pwd)/bench/results/natpass-$stamp-$1.toml"
  write_conf "$1" "$conf"
  case $1 in
    af_xdp*) echo "$flush; exec $(pwd)/bench/xdp-ext.sh $bin $conf" ;;
    *) echo "$flush; exec $bin run --config $conf" ;;
  esac
}
results="$(pwd)/bench/results/$stamp.csv"
# The harness's own log, kept for the fast path's flow counts (see the end).
log="$(pwd)/bench/results/$stamp.log"
export RESULTS="$results"
head=$(git rev-parse --short HEAD)
(cd "$PERF_DIR" && ./install_deps.sh >/dev/null && ./build.sh >/dev/null)
# One harness call per (router, run), nat first in each round, so noise hits all alike.
round() { # what: udp FLOWS | tcp
  local first=1 b
  for b in $BACKENDS; do
    local modes=ext
    [ $first = 1 ] && modes="nat ext"
    [ $first = 1 ] && [ "$1" = udp ] && [ "$XSK" = 1 ] && modes="nat xsk ext"
    first=0
    local args=(compare "$modes" "${2:-}" 1)
    [ "$1" = tcp ] && args=(compare-tcp "$modes" 1 1)
    echo "natpass-backend: $b" >>"$log"
    EXT_CMD=$(ext_cmd "$b") TAG="natpass-$b-$head" "$PERF_DIR/bench.sh" "${args[@]}" 2>&1 | tee -a "$log"
  done
}
for r in $(seq 1 "$RUNS"); do
  for f in $FLOWS; do
    round udp "$f"
  done
  if [ "$TCP" = 1 ]; then round tcp; fi
done
"$PERF_DIR/report.sh" "$results" | tee "bench/results/$stamp.md"
# Whether a UDP run's flows were learnt decides its rate under a flood of new flows
# (docs/BENCHMARKS.md): natpass's exit summary says how many flows its fast path held.
awk '
  /^natpass-backend: / { b = $2; n = "?" }
  /fast path: [0-9]+ flows now/ { for (i = 1; i < NF; i++) if ($i == "path:") n = $(i + 1) }
  / udp ext flows=/ {
    f = d = s = ""
    for (i = 1; i <= NF; i++) {
      if ($i ~ /^flows=/) f = substr($i, 7)
      if ($i ~ /^delivered=/) d = substr($i, 11)
      if ($i ~ /^sent=/) s = substr($i, 6)
    }
    if (!hdr++) {
      print "\nFlows in the fast path of natpass when each UDP run ended (from its exit summary):\n"
      print "| backend | flows | in the fast path | delivered pps | generator sent pps |"
      print "|---|---:|---:|---:|---:|"
    }
    printf "| %s | %s | %s | %s | %s |\n", b, f, n, d, s
    n = "?"
  }' "$log" | tee -a "bench/results/$stamp.md"
