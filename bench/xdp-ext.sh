#!/usr/bin/env bash
# The harness's `ext` router for natpass on AF_XDP (run inside perf-rtr by bench/netns.sh):
# starts `natpass run`, and once it has attached its XDP program (which gives the router veths
# a NAPI instance) makes that NAPI threaded and pins its kthreads to the CPUs this script is
# pinned to, as the harness does for its own AF_XDP baseline (xskfwd). Without this, veth's
# receive work for natpass would run on the generator's CPU. Prints "ready" when done and
# forwards SIGTERM to natpass.
#
#   bench/xdp-ext.sh NATPASS_BIN CONFIG
set -u
bin=$1 conf=$2
out=$(mktemp /tmp/natpass-xdp-ext.XXXXXX)
"$bin" run --config "$conf" >"$out" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; rm -f "$out"; exit 0' TERM INT
for _ in $(seq 1 100); do
  grep -q ready "$out" && break
  kill -0 $pid 2>/dev/null || { rm -f "$out"; exit 1; }
  sleep 0.1
done
cpus=$(taskset -pc $$ | awk -F': ' '{print $2}')
for d in veth-lan veth-wan; do echo 1 >"/sys/class/net/$d/threaded" 2>/dev/null || echo "xdp-ext: threaded NAPI on $d failed" >&2; done
for p in $(ps -eo pid=,comm= | awk '$2 ~ /^napi\/veth-(lan|wan)/ {print $1}'); do
  taskset -pc "$cpus" "$p" >/dev/null && echo "xdp-ext: pinned $(cat /proc/$p/comm) to CPU $cpus" >&2
done
echo ready
wait $pid
