#!/usr/bin/python3
"""natpass lab PPTP server that ends its calls (RFC 2637 control connection only).

pptpd ends a call whose PPP ended by closing the control connection, without a
Call-Disconnect-Notify, so the lab cannot make it send a result code. This server takes the
control connection (Start-Control-Connection-Reply, §2.2), answers each Outgoing-Call-Request
as connected (§2.8), and after DELAY seconds ends the call with a Call-Disconnect-Notify
(§2.13) carrying RESULT (1 Lost Carrier, 2 General Error, 3 Admin Shutdown, 4 Request). It
answers Echo-Requests (§2.5) and Stop-Control-Connection-Requests (§2.4), and ignores the rest
(Set-Link-Info, Call-Clear-Request). No GRE: the calls never carry data.

  pptp_peer.py ADDRESS RESULT DELAY
"""
import socket
import struct
import sys
import threading
import time

MAGIC = 0x1A2B3C4D
SCCRQ, SCCRP, STOPCCRQ, STOPCCRP, ECHORQ, ECHORP = 1, 2, 3, 4, 5, 6
OCRQ, OCRP, CDN = 7, 8, 13


def message(kind, body):
    return struct.pack("!HHIHH", 12 + len(body), 1, MAGIC, kind, 0) + body


def name(text):
    return text.encode().ljust(64, b"\0")


def serve(conn, peer, result, delay, next_call):
    buf = b""
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
            while len(buf) >= 12:
                length, _, magic, kind = struct.unpack("!HHIH", buf[:10])
                if magic != MAGIC or length < 12:
                    return
                if len(buf) < length:
                    break
                msg, buf = buf[:length], buf[length:]
                if kind == SCCRQ:
                    body = struct.pack("!HBBIIHH", 0x0100, 1, 0, 1, 1, 1, 1) + name("natpass-lab") + name("pptp_peer.py")
                    conn.sendall(message(SCCRP, body))
                elif kind == ECHORQ:
                    conn.sendall(message(ECHORP, msg[12:16] + struct.pack("!BBH", 1, 0, 0)))
                elif kind == STOPCCRQ:
                    conn.sendall(message(STOPCCRP, struct.pack("!BBH", 1, 0, 0)))
                elif kind == OCRQ and len(msg) >= 16:
                    (client_call,) = struct.unpack("!H", msg[12:14])
                    ours = next_call()
                    body = struct.pack("!HHBBHIHHI", ours, client_call, 1, 0, 0, 64000, 64, 0, 0)
                    conn.sendall(message(OCRP, body))
                    print("call %d from %s connected" % (ours, peer[0]), flush=True)
                    time.sleep(delay)
                    stats = b"natpass lab: the server ends the call".ljust(128, b"\0")
                    conn.sendall(message(CDN, struct.pack("!HBBHH", ours, result, 0, 0, 0) + stats))
                    print("call %d from %s ended with result %d" % (ours, peer[0], result), flush=True)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    address, result, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    calls = iter(range(100, 65536))
    lock = threading.Lock()

    def next_call():
        with lock:
            return next(calls)

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, 1723))
    s.listen(16)
    print("ready", flush=True)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve, args=(conn, peer, result, delay, next_call), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
