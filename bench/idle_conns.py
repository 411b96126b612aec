#!/usr/bin/env python3
"""Idle keep-alive memory probe for bench/run.sh (adapted from shared/anchors).

Opens N connections to 127.0.0.1:PORT, sends ONE `GET /plaintext` on each and
reads its response (so every connection is a used, idle keep-alive
connection), then holds them all idle for HOLD seconds and closes them.
Loopback only.

Once every connect/request is done it writes the number of connections that
are open to --ready-file: the caller samples the server's VmRSS then. At the
end it prints (stderr) how many connections the server closed while they were
held, which would make the RSS figure meaningless (idle timeout, connection
limit).
"""
import argparse
import asyncio
import resource
import sys
import time

BODY = b"Hello, World!"


async def open_one(port, req, sem, conns, errors):
    async with sem:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            w.write(req)
            await w.drain()
            buf = b""
            while BODY not in buf:
                chunk = await asyncio.wait_for(r.read(4096), 10)
                if not chunk:
                    raise ConnectionError("closed before the response")
                buf += chunk
            conns.append((r, w))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--ready-file", required=True)
    a = ap.parse_args()
    req = f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.n + 1000), hard))
    sem = asyncio.Semaphore(a.concurrency)
    conns, errors = [], []
    t0 = time.monotonic()
    await asyncio.gather(*(open_one(a.port, req, sem, conns, errors) for _ in range(a.n)))
    t1 = time.monotonic()
    with open(a.ready_file, "w") as f:
        f.write(f"{len(conns)}\n")
    await asyncio.sleep(a.hold)
    # The event loop saw an EOF/reset on any connection the server closed meanwhile.
    closed = sum(1 for r, _ in conns if r.at_eof() or r.exception() is not None)
    print(f"opened {len(conns)}/{a.n} in {t1 - t0:.2f}s, errors={len(errors)}, "
          f"closed by the server during the {a.hold:g}s hold={closed}"
          + (f", first error={errors[0]}" if errors else ""), file=sys.stderr)
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
