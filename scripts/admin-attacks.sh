#!/usr/bin/env bash
# Attacks the admin of a real `natpass run` while it routes: three network namespaces
# (client -- natpass -- server), the admin on HTTPS 0.0.0.0:8443, and from the router's own
# namespace 200 slow bodies, 1,000 idle connections and 32 endless headers at once, from
# many loopback addresses, while the client pings the server through natpass every 10 ms.
# Prints natpass's memory, the slowest /metrics scrape and the ping loss. As root; needs
# python3 and iproute2. The numbers in docs/control-plane.md come from this script.
#
#   scripts/admin-attacks.sh [NATPASS_BINARY]     (default: target/debug/natpass)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/natpass}"
p=npatk
dir="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  for n in $p-c $p-r $p-s; do ip netns del $n 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
for n in $p-c $p-r $p-s; do ip netns add $n; ip -n $n link set lo up; done
ip link add lan0 netns $p-r type veth peer name eth0 netns $p-c
ip link add wan0 netns $p-r type veth peer name eth0 netns $p-s
ip -n $p-r link set lan0 up
ip -n $p-r link set wan0 up
ip -n $p-c addr add 192.168.77.10/24 dev eth0
ip -n $p-c link set eth0 up
ip -n $p-c route add default via 192.168.77.1
ip -n $p-s addr add 203.0.113.254/24 dev eth0
ip -n $p-s link set eth0 up
ip netns exec $p-r sysctl -qw net.ipv6.conf.all.disable_ipv6=1
cat > "$dir/natpass.toml" <<CFG
[interfaces.lan]
name = "lan0"
address = "192.168.77.1/24"

[interfaces.wan]
name = "wan0"
address = "203.0.113.1/24"
gateway = "203.0.113.254"

[admin]
listen = "0.0.0.0:8443"
token_file = "$dir/api.token"
CFG
ip netns exec $p-r "$bin" run --config "$dir/natpass.toml" > "$dir/out.log" 2> "$dir/err.log" &
pid=$!
for _ in $(seq 50); do grep -q '^ready' "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$dir/out.log" || { cat "$dir/err.log"; exit 1; }
ip netns exec $p-c ping -c 700 -i 0.01 -q 203.0.113.254 > "$dir/ping.log" 2>&1 &
ping_pid=$!
ip netns exec $p-r python3 - "$pid" <<'PY'
import socket, ssl, sys, threading, time
ADDR = ("127.0.0.1", 8443)
PID = int(sys.argv[1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def rss():
    for l in open(f"/proc/{PID}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) // 1024
def src(i): return f"127.1.{i // 254}.{i % 254 + 1}"
def conn(i, tls=True):
    s = socket.socket(); s.bind((src(i), 0)); s.settimeout(10); s.connect(ADDR)
    return ctx.wrap_socket(s) if tls else s
worst, fails, stop = [0.0], [0], [False]
def probe():
    while not stop[0]:
        t = time.time(); ok = False
        try:
            s = ctx.wrap_socket(socket.create_connection(ADDR, timeout=10))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while (d := s.recv(65536)): data += d
            ok = data.startswith(b"HTTP/1.1 200")
        except Exception: pass
        worst[0] = max(worst[0], time.time() - t); fails[0] += not ok
        time.sleep(0.1)
before = rss()
th = threading.Thread(target=probe); th.start()
held = []
for i in range(200):
    try:
        s = conn(i); s.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n\r\nuser=admin"); held.append(s)
    except Exception: pass
for i in range(1000):
    try: held.append(conn(1000 + i % 40, False))
    except Exception: pass
def endless(i):
    end = time.time() + 5
    while time.time() < end:
        try:
            s = conn(3000 + i); s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-E: ")
            while True: s.sendall(b"a" * 65536)
        except Exception: pass
ts = [threading.Thread(target=endless, args=(i,)) for i in range(32)]
[t.start() for t in ts]
peak = before
for _ in range(10):
    time.sleep(0.5); peak = max(peak, rss())
[t.join() for t in ts]
stop[0] = True; th.join()
print(f"natpass memory: {before} MiB before, {peak} MiB at most during the attacks")
print(f"/metrics over HTTPS: slowest {worst[0] * 1000:.0f} ms, {fails[0]} failed")
sys.exit(1 if fails[0] or worst[0] >= 1 or peak - before >= 64 else 0)
PY
wait "$ping_pid" || true
grep -E "packets transmitted" "$dir/ping.log"
grep -q " 0% packet loss" "$dir/ping.log"
