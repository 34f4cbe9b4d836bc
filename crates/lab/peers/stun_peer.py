#!/usr/bin/python3
"""natpass lab STUN peer: NAT behaviour discovery (RFC 5780) over STUN (RFC 5389).

  stun_peer.py server A1 A2 [P1 P2]   answer Binding Requests on A1/A2 x P1/P2 with
                                      XOR-MAPPED-ADDRESS, OTHER-ADDRESS and RESPONSE-ORIGIN,
                                      from the address/port CHANGE-REQUEST asks for
  stun_peer.py client A1 [P1]         run the mapping tests (RFC 5780 §4.3) and filtering tests
                                      (§4.4); print one JSON line with both verdicts
"""
import json
import os
import select
import socket
import struct
import sys

MAGIC = 0x2112A442
BINDING_REQ, BINDING_OK = 0x0001, 0x0101
XOR_MAPPED, CHANGE_REQ, RESPONSE_ORIGIN, OTHER_ADDRESS = 0x0020, 0x0003, 0x802B, 0x802C
CHANGE_IP, CHANGE_PORT = 0x04, 0x02


def attr(t, v):
    pad = (-len(v)) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def addr_value(ip, port, xor=False):
    raw_ip = socket.inet_aton(ip)
    if xor:
        port ^= MAGIC >> 16
        raw_ip = bytes(a ^ b for a, b in zip(raw_ip, struct.pack("!I", MAGIC)))
    return struct.pack("!BBH", 0, 1, port) + raw_ip


def parse_addr(v, xor=False):
    port = struct.unpack("!H", v[2:4])[0]
    ip = v[4:8]
    if xor:
        port ^= MAGIC >> 16
        ip = bytes(a ^ b for a, b in zip(ip, struct.pack("!I", MAGIC)))
    return socket.inet_ntoa(ip), port


def message(kind, tid, attrs=b""):
    return struct.pack("!HHI", kind, len(attrs), MAGIC) + tid + attrs


def parse(data):
    if len(data) < 20:
        return None
    kind, length, magic = struct.unpack("!HHI", data[:8])
    if magic != MAGIC or len(data) < 20 + length:
        return None
    attrs, i = {}, 20
    while i + 4 <= 20 + length:
        t, n = struct.unpack("!HH", data[i:i + 4])
        attrs[t] = data[i + 4:i + 4 + n]
        i += 4 + n + ((-n) % 4)
    return kind, data[8:20], attrs


def server(a1, a2, p1, p2):
    socks = {}
    for ip in (a1, a2):
        for port in (p1, p2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port))
            socks[(ip, port)] = s
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(list(socks.values()), [], [])
        for s in ready:
            data, src = s.recvfrom(2048)
            m = parse(data)
            if not m or m[0] != BINDING_REQ:
                continue
            _, tid, attrs = m
            ip, port = s.getsockname()
            flags = struct.unpack("!I", attrs[CHANGE_REQ])[0] if CHANGE_REQ in attrs else 0
            if flags & CHANGE_IP:
                ip = a2 if ip == a1 else a1
            if flags & CHANGE_PORT:
                port = p2 if port == p1 else p1
            other = (a2, p2) if s.getsockname() == (a1, p1) else (a1, p1)
            body = attr(XOR_MAPPED, addr_value(src[0], src[1], xor=True))
            body += attr(OTHER_ADDRESS, addr_value(*other))
            body += attr(RESPONSE_ORIGIN, addr_value(ip, port))
            socks[(ip, port)].sendto(message(BINDING_OK, tid, body), src)


def request(sock, dest, change=0, tries=3, wait=0.7):
    tid = os.urandom(12)
    body = attr(CHANGE_REQ, struct.pack("!I", change)) if change else b""
    for _ in range(tries):
        sock.sendto(message(BINDING_REQ, tid, body), dest)
        r, _, _ = select.select([sock], [], [], wait)
        while r:
            data, _ = sock.recvfrom(2048)
            m = parse(data)
            if m and m[0] == BINDING_OK and m[1] == tid:
                return m[2]
            r, _, _ = select.select([sock], [], [], wait)
    return None


def client(a1, p1):
    out = {}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    r1 = request(s, (a1, p1))
    if r1 is None or OTHER_ADDRESS not in r1:
        print(json.dumps({"error": "no answer (or no OTHER-ADDRESS) from %s:%d" % (a1, p1)}))
        return 1
    x1 = parse_addr(r1[XOR_MAPPED], xor=True)
    a2, p2 = parse_addr(r1[OTHER_ADDRESS])
    out["mapped"] = "%s:%d" % x1
    r2 = request(s, (a2, p1))
    x2 = parse_addr(r2[XOR_MAPPED], xor=True) if r2 else None
    if x2 == x1:
        out["mapping"] = "endpoint-independent"
    elif x2 is None:
        out["mapping"] = "unknown (no answer from the alternate address)"
    else:
        r3 = request(s, (a2, p2))
        x3 = parse_addr(r3[XOR_MAPPED], xor=True) if r3 else None
        out["mapping"] = "address-dependent" if x3 == x2 else "address-and-port-dependent"
    f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    f.bind(("0.0.0.0", 0))
    if request(f, (a1, p1)) is None:
        out["filtering"] = "unknown"
    elif request(f, (a1, p1), CHANGE_IP | CHANGE_PORT, tries=2) is not None:
        out["filtering"] = "endpoint-independent"
    elif request(f, (a1, p1), CHANGE_PORT, tries=2) is not None:
        out["filtering"] = "address-dependent"
    else:
        out["filtering"] = "address-and-port-dependent"
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["server"] and len(a) >= 3:
        server(a[1], a[2], int(a[3]) if len(a) > 3 else 3478, int(a[4]) if len(a) > 4 else 3479)
    elif a[:1] == ["client"] and len(a) >= 2:
        sys.exit(client(a[1], int(a[2]) if len(a) > 2 else 3478))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
