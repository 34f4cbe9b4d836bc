#!/usr/bin/python3
"""natpass lab raw-ESP peer: ESP (IP protocol 50, RFC 4303, tunnel mode) really encrypted
with AES-128-CBC (RFC 3602) and authenticated with HMAC-SHA-256-128 (RFC 4868).

No IKE here can produce raw ESP through a NAT (NAT detection moves it into UDP 4500), so the
lab drives raw ESP passthrough with this peer. Keys are derived from the SPI and a shared
lab secret, so both ends know them without a key exchange.

  esp_peer.py server                     answer every valid ESP packet from its sender,
                                         on SPI+1, with the decrypted payload echoed back
  esp_peer.py server6                    the same over IPv6
  esp_peer.py client SERVER SPI COUNT    send COUNT packets on SPI, wait for each answer;
                                         prints one JSON line: sent, answered, bytes
  esp_peer.py client SERVER SPI COUNT FIRST_SIZE
                                         the same, but the first packet is FIRST_SIZE
                                         bytes of IP with DF set (path MTU discovery,
                                         RFC 1191): once the path says it is too big, the
                                         client goes on with the others (IPv4 only)
                                         (over IPv6 when SERVER is an IPv6 address)

The inner packets are IPv4 either way (tunnel mode). An IPv4 raw socket hands over the IP
header with the packet, an IPv6 one does not (RFC 3542 §3).
"""
import hashlib
import hmac
import json
import os
import select
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SECRET = b"natpass-lab-raw-esp"


def keys(spi):
    s = struct.pack("!I", spi)
    return hashlib.sha256(SECRET + b"enc" + s).digest()[:16], hashlib.sha256(SECRET + b"auth" + s).digest()


def inner_ipv4(src, dst, text):
    udp = struct.pack("!HHHH", 40000, 7, 8 + len(text), 0) + text
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:] + udp


def seal(spi, seq, inner):
    enc, auth = keys(spi)
    pad = (-(len(inner) + 2)) % 16
    plain = inner + bytes(range(1, pad + 1)) + bytes([pad, 4])  # next header 4: IPv4
    iv = os.urandom(16)
    e = Cipher(algorithms.AES(enc), modes.CBC(iv)).encryptor()
    body = struct.pack("!II", spi, seq) + iv + e.update(plain) + e.finalize()
    return body + hmac.new(auth, body, hashlib.sha256).digest()[:16]


def open_esp(packet):
    """ESP bytes -> (spi, seq, inner) or None when the ICV or padding is wrong."""
    if len(packet) < 8 + 16 + 16 + 16:
        return None
    spi, seq = struct.unpack("!II", packet[:8])
    enc, auth = keys(spi)
    body, icv = packet[:-16], packet[-16:]
    if not hmac.compare_digest(hmac.new(auth, body, hashlib.sha256).digest()[:16], icv):
        return None
    iv, ct = body[8:24], body[24:]
    if len(ct) % 16:
        return None
    d = Cipher(algorithms.AES(enc), modes.CBC(iv)).decryptor()
    plain = d.update(ct) + d.finalize()
    pad, nh = plain[-2], plain[-1]
    if nh != 4 or pad + 2 > len(plain):
        return None
    return spi, seq, plain[: -(pad + 2)]


def esp_socket(family):
    return socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_ESP)


def esp_of(family, data):
    """The ESP bytes of what a raw socket of `family` received."""
    return data[(data[0] & 0x0F) * 4:] if family == socket.AF_INET else data


def server(family):
    s = esp_socket(family)
    print("ready", flush=True)
    seqs = {}
    while True:
        data, addr = s.recvfrom(65535)
        src = addr[0]
        got = open_esp(esp_of(family, data))
        if got is None:
            print("bad packet from %s" % src, flush=True)
            continue
        spi, seq, inner = got
        reply_spi = (spi + 1) & 0xFFFFFFFF
        seqs[reply_spi] = seqs.get(reply_spi, 0) + 1
        text = b"echo " + inner[28:]
        out = seal(reply_spi, seqs[reply_spi], inner_ipv4(inner[16:20], inner[12:16], text))
        s.sendto(out, (src, 0))
        print("spi %#x seq %d from %s answered" % (spi, seq, src), flush=True)


def client(server_ip, spi, count, first_size=0):
    family = socket.AF_INET6 if ":" in server_ip else socket.AF_INET
    s = esp_socket(family)
    if family == socket.AF_INET:
        # DF on every packet, and a send larger than the path MTU the kernel learnt fails.
        s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER, IP_PMTUDISC_DO
    answered, nbytes, too_big = 0, 0, 0
    for seq in range(1, count + 1):
        text = b"natpass lab spi %#x seq %d" % (spi, seq)
        if seq == 1 and first_size:
            # 20 (IP) + 8 (ESP) + 16 (IV) + inner (28 + text) + 2 + padding + 16 (ICV).
            text += b"." * max(0, first_size - 110 - len(text))
        pkt = seal(spi, seq, inner_ipv4(socket.inet_aton("10.99.0.2"), socket.inet_aton("10.99.0.1"), text))
        deadline = time.time() + 3.0
        next_send = 0.0
        ok = False
        while time.time() < deadline and not ok:
            if time.time() >= next_send:
                try:
                    s.sendto(pkt, (server_ip, 0))
                except OSError:
                    # EMSGSIZE: the path said this packet is too big; go on with the next.
                    too_big += 1
                    break
                next_send = time.time() + 0.5
            r, _, _ = select.select([s], [], [], 0.1)
            if not r:
                continue
            data, _ = s.recvfrom(65535)
            got = open_esp(esp_of(family, data))
            if got and got[0] == spi + 1 and got[2][28:] == b"echo " + text:
                ok = True
                answered += 1
                nbytes += len(data)
    print(json.dumps({"spi": spi, "sent": count, "answered": answered, "bytes": nbytes, "too_big": too_big}), flush=True)
    return 0 if answered == count else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        server(socket.AF_INET)
    elif sys.argv[1:2] == ["server6"]:
        server(socket.AF_INET6)
    elif sys.argv[1:2] == ["client"] and len(sys.argv) in (5, 6):
        first = int(sys.argv[5]) if len(sys.argv) == 6 else 0
        sys.exit(client(sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4]), first))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
