#!/usr/bin/env python3
"""HTTP/2 control-frame flood probe: what a flood costs the server, and how it ends.

Opens one prior-knowledge h2c connection to 127.0.0.1:PORT, then sends KIND frames at RATE a
second for SECS seconds (in batches every 10 ms) while a thread reads and counts what the server
sends back. Prints the server's CPU time over the flood (utime + stime of PID from
/proc/PID/stat), the bytes it sent, and the GOAWAY code if any. Loopback only.

  bench/h2_flood.py ping 100000 5 --port 8080 --pid "$(pgrep -n percore)"
"""
import argparse
import os
import socket
import struct
import threading
import time


def frame(kind, flags, stream, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, kind, flags, stream) + payload


def literal(name, value):
    """HPACK literal without indexing, new name (RFC 7541 §6.2.2)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


POST_ECHO = b"".join(
    literal(n, v)
    for n, v in [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/echo"), (b":authority", b"x")]
)

KINDS = {
    "ping": frame(6, 0, 0, b"pingpong"),
    "pingack": frame(6, 1, 0, b"pingpong"),
    "settings": frame(4, 0, 0, struct.pack(">HI", 4, 65535)),
    "bigsettings": frame(4, 0, 0, struct.pack(">HI", 4, 65535) * 2730),
    "priority": frame(2, 0, 3, struct.pack(">IB", 0, 16)),
    "wu": frame(8, 0, 0, struct.pack(">I", 1)),
    "unknown": frame(0x20, 0, 0),
    # Empty DATA without END_STREAM on a POST left open.
    "data0": frame(0, 0, 1),
}


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("rate", type=int, help="frames per second")
    ap.add_argument("secs", type=float)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the server's process id")
    args = ap.parse_args()

    sock = socket.create_connection(("127.0.0.1", args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(4, 1, 0))
    seen = {"bytes": 0, "goaway": None, "closed": False}

    def reader():
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                seen["closed"] = True
                return
            seen["bytes"] += len(data)
            buf += data
            while len(buf) >= 9:
                n = (buf[0] << 16) | (buf[1] << 8) | buf[2]
                if len(buf) < 9 + n:
                    break
                if buf[3] == 7 and seen["goaway"] is None:
                    seen["goaway"] = struct.unpack(">I", buf[13:17])[0]
                buf = buf[9 + n :]

    threading.Thread(target=reader, daemon=True).start()
    if args.kind == "data0":
        sock.sendall(frame(1, 4, 1, POST_ECHO))
    time.sleep(0.2)

    per_batch = max(1, args.rate // 100)
    batch = KINDS[args.kind] * per_batch
    cpu0, start, sent = cpu_seconds(args.pid), time.time(), 0
    while time.time() - start < args.secs and not seen["closed"]:
        try:
            sock.sendall(batch)
        except OSError:
            break
        sent += per_batch
        ahead = start + sent / args.rate - time.time()
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.time() - start
    time.sleep(0.3)
    cpu = cpu_seconds(args.pid) - cpu0
    print(
        f"{args.kind} rate={args.rate}/s sent={sent} in {elapsed:.2f}s server_cpu={cpu:.2f}s "
        f"received={seen['bytes']}B goaway={seen['goaway']} closed={seen['closed']}"
    )


if __name__ == "__main__":
    main()
