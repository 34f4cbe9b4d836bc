#!/usr/bin/python3
"""natpass lab PPP: a user-space PPP endpoint for kernels without PPP (no /dev/ppp).

xl2tpd, pptp (pptp-linux) and pptpd start "pppd" on a pty that carries PPP in async HDLC
framing (RFC 1662). This program stands in for pppd there:
  - RFC 1662 framing: 0x7E flags, 0x7D escapes, FCS-16;
  - RFC 1661 LCP: Configure-Request with a Magic-Number, acks the peer's options,
    Echo-Reply, Terminate-Ack, Protocol-Reject for protocols it does not speak;
  - RFC 1332 IPCP: IP-Address; a peer asking for 0.0.0.0 is Nak'd with the remote address;
  - IPv4 (protocol 0x0021) to and from a TUN device once IPCP is open.
No authentication, compression or encryption: configure the peers with `noauth`.

Arguments, as pppd gets them: a /dev/... tty (else stdin/stdout are the tty, as pptpctrl
does), LOCAL:REMOTE, `file F` (options read as arguments), `logfile F`; others are ignored.
"""
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import time
import tty

LCP, IPCP, IPV4 = 0xC021, 0x8021, 0x0021
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ, TERM_REQ, TERM_ACK, CODE_REJ, PROTO_REJ, ECHO_REQ, ECHO_REP = range(1, 11)

settings = {"tty": None, "local": None, "remote": None, "logfile": None}


def read_args(tokens):
    i = 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if t.startswith("/dev/"):
            settings["tty"] = t
        elif ":" in t and all(c.isdigit() or c in ".:" for c in t):
            a, b = t.split(":", 1)
            settings["local"] = a or settings["local"]
            settings["remote"] = b or settings["remote"]
        elif t == "file" and nxt:
            try:
                with open(nxt) as f:
                    read_args([w for line in f for w in line.split("#")[0].split()])
            except OSError:
                pass
            i += 1
        elif t == "logfile" and nxt:
            settings["logfile"] = nxt
            i += 1
        i += 1


read_args(sys.argv[1:])
log_file = open(settings["logfile"], "a") if settings["logfile"] else sys.stderr


def log(msg):
    log_file.write("%s ppp[%d]: %s\n" % (time.strftime("%H:%M:%S"), os.getpid(), msg))
    log_file.flush()


# ---- RFC 1662 framing
FCS_TABLE = []
for b in range(256):
    v = b
    for _ in range(8):
        v = (v >> 1) ^ 0x8408 if v & 1 else v >> 1
    FCS_TABLE.append(v)


def fcs16(data):
    f = 0xFFFF
    for b in data:
        f = (f >> 8) ^ FCS_TABLE[(f ^ b) & 0xFF]
    return f


def frame(proto, payload):
    body = bytes([0xFF, 0x03]) + struct.pack("!H", proto) + payload
    f = fcs16(body) ^ 0xFFFF
    body += struct.pack("<H", f)
    out = bytearray([0x7E])
    for b in body:
        if b < 0x20 or b in (0x7E, 0x7D):
            out += bytes([0x7D, b ^ 0x20])
        else:
            out.append(b)
    out.append(0x7E)
    return bytes(out)


class Deframer:
    def __init__(self):
        self.buf = bytearray()
        self.esc = False
        self.bad = 0

    def feed(self, data):
        frames = []
        for b in data:
            if b == 0x7E:
                if len(self.buf) >= 4:
                    if fcs16(self.buf) == 0xF0B8:
                        frames.append(bytes(self.buf[:-2]))
                    else:
                        self.bad += 1
                self.buf.clear()
                self.esc = False
            elif b == 0x7D:
                self.esc = True
            else:
                self.buf.append(b ^ 0x20 if self.esc else b)
                self.esc = False
        return frames


def split_ppp(f):
    if f[:2] == b"\xff\x03":
        f = f[2:]
    if not f:
        return None, b""
    if f[0] & 1:
        return f[0], f[1:]
    if len(f) < 2:
        return None, b""
    return (f[0] << 8) | f[1], f[2:]


def options(data):
    out, i = [], 0
    while i + 2 <= len(data):
        t, n = data[i], data[i + 1]
        if n < 2 or i + n > len(data):
            break
        out.append((t, data[i + 2:i + n]))
        i += n
    return out


def pack_opts(opts):
    return b"".join(bytes([t, len(v) + 2]) + v for t, v in opts)


def cp(code, ident, data):
    return struct.pack("!BBH", code, ident, len(data) + 4) + data


# ---- the endpoint
if settings["tty"]:
    fd_in = fd_out = os.open(settings["tty"], os.O_RDWR | os.O_NOCTTY)
else:
    fd_in, fd_out = 0, 1
for fd in {fd_in, fd_out}:
    if os.isatty(fd):
        tty.setraw(fd)

magic = os.urandom(4)
ident = 1
lcp = {"sent_ok": False, "got_ok": False, "last": 0.0}
ipcp = {"sent_ok": False, "got_ok": False, "last": 0.0, "started": False}
tun = None
stopping = False


def write(proto, payload):
    data = frame(proto, payload)
    while data:
        n = os.write(fd_out, data)
        data = data[n:]


def send_conf(proto):
    global ident
    ident = (ident + 1) & 0xFF
    if proto == LCP:
        write(LCP, cp(CONF_REQ, ident, pack_opts([(5, magic)])))
        lcp["last"] = time.time()
    else:
        addr = bytes(int(x) for x in (settings["local"] or "0.0.0.0").split("."))
        write(IPCP, cp(CONF_REQ, ident, pack_opts([(3, addr)])))
        ipcp["last"] = time.time()


def open_tun():
    global tun
    fd = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH", b"nppp%d", 0x0001 | 0x1000)  # IFF_TUN | IFF_NO_PI
    res = fcntl.ioctl(fd, 0x400454CA, ifr)  # TUNSETIFF
    name = res[:16].rstrip(b"\0").decode()
    subprocess.run(["ip", "addr", "add", settings["local"], "peer", settings["remote"], "dev", name], check=False)
    subprocess.run(["ip", "link", "set", name, "up"], check=False)
    tun = fd
    log("IPCP up: %s local %s remote %s" % (name, settings["local"], settings["remote"]))


def on_lcp(code, rid, data):
    if code == CONF_REQ:
        write(LCP, cp(CONF_ACK, rid, data))
        lcp["sent_ok"] = True
    elif code == CONF_ACK:
        lcp["got_ok"] = True
    elif code in (CONF_NAK, CONF_REJ):
        send_conf(LCP)
    elif code == ECHO_REQ:
        write(LCP, cp(ECHO_REP, rid, magic + data[4:]))
    elif code == TERM_REQ:
        write(LCP, cp(TERM_ACK, rid, b""))
        log("peer terminated the link")
        raise SystemExit(0)
    elif code == TERM_ACK:
        raise SystemExit(0)


def on_ipcp(code, rid, data):
    if code == CONF_REQ:
        opts = options(data)
        nak = []
        for t, v in opts:
            if t == 3:
                peer = ".".join(str(b) for b in v)
                if peer == "0.0.0.0" and settings["remote"]:
                    nak.append((3, bytes(int(x) for x in settings["remote"].split("."))))
                elif peer != "0.0.0.0":
                    settings["remote"] = peer
        rej = [(t, v) for t, v in opts if t != 3]
        if rej:
            write(IPCP, cp(CONF_REJ, rid, pack_opts(rej)))
        elif nak:
            write(IPCP, cp(CONF_NAK, rid, pack_opts(nak)))
        else:
            write(IPCP, cp(CONF_ACK, rid, data))
            ipcp["sent_ok"] = True
    elif code == CONF_ACK:
        ipcp["got_ok"] = True
    elif code == CONF_NAK:
        for t, v in options(data):
            if t == 3:
                settings["local"] = ".".join(str(b) for b in v)
        send_conf(IPCP)
    elif code == CONF_REJ:
        send_conf(IPCP)
    elif code == TERM_REQ:
        write(IPCP, cp(TERM_ACK, rid, b""))


def stop(*_):
    raise SystemExit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
signal.signal(signal.SIGINT, stop)
log("started: tty %s local %s remote %s" % (settings["tty"] or "stdin", settings["local"], settings["remote"]))
deframer = Deframer()
send_conf(LCP)
try:
    while True:
        now = time.time()
        if not lcp["got_ok"] and now - lcp["last"] > 1.0:
            send_conf(LCP)
        lcp_open = lcp["got_ok"] and lcp["sent_ok"]
        if lcp_open and not ipcp["started"]:
            ipcp["started"] = True
            log("LCP open")
            send_conf(IPCP)
        if ipcp["started"] and not ipcp["got_ok"] and now - ipcp["last"] > 1.0:
            send_conf(IPCP)
        if tun is None and ipcp["got_ok"] and ipcp["sent_ok"] and settings["local"] and settings["remote"]:
            open_tun()
        fds = [fd_in] + ([tun] if tun is not None else [])
        ready, _, _ = select.select(fds, [], [], 0.5)
        if fd_in in ready:
            data = os.read(fd_in, 65536)
            if not data:
                log("tty closed")
                break
            for f in deframer.feed(data):
                proto, payload = split_ppp(f)
                if proto is None:
                    continue
                if proto == IPV4:
                    if tun is not None:
                        os.write(tun, payload)
                    continue
                if len(payload) < 4:
                    continue
                code, rid, length = struct.unpack("!BBH", payload[:4])
                body = payload[4:length]
                if proto == LCP:
                    on_lcp(code, rid, body)
                elif proto == IPCP:
                    on_ipcp(code, rid, body)
                elif lcp_open:
                    ident = (ident + 1) & 0xFF
                    write(LCP, cp(PROTO_REJ, ident, struct.pack("!H", proto) + payload[:64]))
        if tun is not None and tun in ready:
            write(IPV4, os.read(tun, 65536))
except (SystemExit, KeyboardInterrupt):
    pass
except OSError as e:
    log("stopping: %s" % e)
log("exit")
