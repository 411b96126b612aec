#!/usr/bin/env python3
"""Turn the raw outputs of bench/run.sh into a dated markdown section and APPEND
it to the results file (created with a short header if missing).

  report.py RAWDIR OUT.md

RAWDIR holds runs.csv, meta.txt, mem.csv, resp_sizes.txt, commands.txt and
one wrk output per measured run (see run.sh).
"""
import csv
import os
import re
import statistics
import sys
import tomllib

UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0}

CASE_TITLES = {
    "plaintext": "(a) /plaintext keep-alive",
    "pipeline": "(b) /plaintext pipelined",
    "json": "(c) /json keep-alive",
    "churn": "(d) churn: new conn every N req",
    "close": "(e) new conn per request",
}
# crates worth naming per server (percore's lockfile also holds its dev-dependencies)
CRATES = {
    "percore": ["monoio", "io-uring", "serde_json", "bytes", "memchr", "mimalloc"],
    "floor": ["monoio", "io-uring", "memchr"],
    "actix": ["tokio", "actix-web", "actix-http", "actix-server", "serde_json"],
    "hyper": ["tokio", "hyper", "hyper-util", "serde_json"],
}

HEADER = """# percore benchmark results

Each section below was appended by one run of `bench/run.sh` (newest last). One
server core each (CPU 1), wrk on the other (CPU 0), loopback only. See
`bench/README.md` for what the cases measure and how to read CPU per request.
Sections marked as smoke runs used short settings and are not results.
"""


def to_us(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s.strip())
    return float(m.group(1)) * UNIT_US[m.group(2)] if m else None


def parse_wrk(text):
    r = {"rps": None, "p50": None, "p99": None, "errors": 0, "requests": None, "err_detail": ""}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    if m:
        r["p50"] = to_us(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if m:
        r["p99"] = to_us(m.group(1))
    details = []
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["errors"] += int(m.group(1))
        details.append(f"non-2xx {m.group(1)}")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["errors"] += sum(int(x) for x in m.groups())
        details.append("connect/read/write/timeout " + "/".join(m.groups()))
    r["err_detail"] = "; ".join(details)
    m = re.search(r"(\d+) requests in", text)
    if m:
        r["requests"] = int(m.group(1))
    return r


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_rps(x):
    return "—" if x is None else f"{x:,.0f}"


def fmt_lat(us):
    if us is None:
        return "—"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt_f(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def read_kv(path):
    kv = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    kv[k] = v
    return kv


def crate_versions(locks):
    out = []
    for item in locks:
        name, _, lock = item.partition(":")
        if not os.path.exists(lock):
            continue
        with open(lock, "rb") as f:
            data = tomllib.load(f)
        want = CRATES.get(name, [])
        vers = sorted({f"{p['name']} {p['version']}" for p in data.get("package", []) if p["name"] in want},
                      key=lambda s: want.index(s.split()[0]))
        out.append((name, vers))
    return out


def report(rawdir, out_md):
    meta = read_kv(os.path.join(rawdir, "meta.txt"))
    hz = float(meta.get("clk_tck", "100"))
    rows = []
    with open(os.path.join(rawdir, "runs.csv")) as f:
        for row in csv.DictReader(f):
            with open(os.path.join(rawdir, row["raw"])) as rf:
                r = parse_wrk(rf.read())
            ut, st, wall = int(row["utime"]), int(row["stime"]), float(row["wall_s"])
            n = r["requests"]
            po = int(row["passive_opens"])
            r.update(
                round=int(row["round"]), case=row["case"], server=row["server"],
                cpu=(ut + st) / hz / wall * 100 if wall > 0 else None,
                usr=ut / hz * 1e6 / n if n else None,
                sys=st / hz * 1e6 / n if n else None,
                tot=(ut + st) / hz * 1e6 / n if n else None,
                cli=float(row["cpu0_busy_pct"]), srv_core=float(row["cpu1_busy_pct"]),
                req_per_conn=n / po if n and po else None,
                opens=po,
            )
            rows.append(r)

    cases = list(dict.fromkeys(r["case"] for r in rows))
    servers = list(dict.fromkeys(r["server"] for r in rows))
    agg = {}
    for c in cases:
        for s in servers:
            rs = [r for r in rows if r["case"] == c and r["server"] == s]
            if not rs:
                continue
            rps = [r["rps"] for r in rs if r["rps"] is not None]
            agg[(c, s)] = {
                "rps": med(rps), "min": min(rps) if rps else None, "max": max(rps) if rps else None,
                "p50": med([r["p50"] for r in rs]), "p99": med([r["p99"] for r in rs]),
                "cpu": med([r["cpu"] for r in rs]),
                "usr": med([r["usr"] for r in rs]), "sys": med([r["sys"] for r in rs]),
                "tot": med([r["tot"] for r in rs]),
                "cli": med([r["cli"] for r in rs]),
                "srv_core": med([r["srv_core"] for r in rs]),
                "rpc": med([r["req_per_conn"] for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "err_detail": "; ".join(r["err_detail"] for r in rs if r["err_detail"]),
                "by_round": {r["round"]: r["rps"] for r in rs},
            }

    # Keep-alive runs open exactly CONNS connections (+1: wrk's own check), so any
    # further accepted connection during them was someone else's TCP traffic.
    conns = int(meta.get("conns", "0") or 0)
    foreign = sum(max(0, r["opens"] - conns - 1) for r in rows if r["case"] in ("plaintext", "pipeline", "json"))
    n_ka = sum(1 for r in rows if r["case"] in ("plaintext", "pipeline", "json"))

    title = f"## {meta.get('date', '?')} UTC"
    if meta.get("note"):
        title += f": {meta['note']}"
    L = [title, ""]
    L.append(f"- percore: commit `{meta.get('percore_commit', '?')}`; driver log: `{meta.get('percore_driver', '').strip() or 'n/a'}`")
    L.append(f"- Machine: `{meta.get('kernel', '?')}`, {meta.get('cpu', '?')}, {meta.get('ncpu', '?')} CPUs ({(meta.get('virt') or 'no hypervisor') + ' guest' if meta.get('virt') else 'no hypervisor seen'}); "
             f"`{meta.get('rustc', '?')}`; nginx `{meta.get('nginx', '?')}`; wrk `{meta.get('wrk', '?')}`; TCP cc `{meta.get('tcp_cc', '?')}`")
    L.append(f"- {meta.get('rounds', '?')} rounds, servers interleaved within each round; every measurement = {meta.get('warm', '?')} warm-up run "
             f"(discarded), then a {meta.get('dur', '?')} measured run; wrk -t1 -c{meta.get('conns', '?')}; pipelining depth {meta.get('depth', '?')}; "
             f"churn: 1 request in {meta.get('churn_every', '?')} says `Connection: close`")
    L.append(f"- Servers pinned to CPU {meta.get('server_cpu', '?')} (one worker thread each), wrk pinned to CPU {meta.get('client_cpu', '?')}; "
             f"floor's io_uring flags `FLOOR_URING={meta.get('floor_uring', '?')}`")
    L.append(f"- Noise: host steal time during the run {meta.get('steal_client', '?')} on the client CPU, {meta.get('steal_server', '?')} on the server CPU; "
             f"loadavg `{meta.get('load_start', '?')}` at start, `{meta.get('load_end', '?')}` at end; "
             f"{foreign} TCP connections accepted on the machine during the {n_ka} keep-alive runs besides wrk's own (0 on a quiet machine); "
             f"{meta.get('elapsed_s', '?')} s of measuring")
    L.append("")

    L.append("### Throughput, latency, server CPU per request")
    L.append("")
    L.append("Medians over rounds. **srv CPU** = the server process's CPU time (all threads, user+sys from `/proc/PID/stat`) ÷ wall time of the "
             "measured run (100 % = its core saturated). **µs/req** = that CPU time ÷ requests completed, split into user and system (kernel: syscalls, "
             "TCP, the loopback receive work done on the server's CPU). **client core** / **srv core** = busy share of the CPU wrk runs on / of the servers' CPU, "
             "from `/proc/stat`. client core near 100 % with srv CPU clearly below 100 % means wrk was the limit and req/s understates the server, "
             "while µs/req stays valid; srv core clearly above srv CPU means something else ran on the server's core (a noisy run). **req/conn** = requests ÷ new TCP "
             "connections accepted during the run (kernel `PassiveOpens`, machine-wide: other TCP traffic inflates it), shown for (d)/(e) only. p50/p99: wrk `--latency`, per request "
             "(per 16-request batch when pipelined, and unreliable there: wrk's coordinated-omission correction assumes one request per batch).")
    L.append("")
    L.append("| case | server | req/s | min–max | p50 | p99 | srv CPU | user µs/req | sys µs/req | total µs/req | client core | srv core | req/conn | errors |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        for s in servers:
            a = agg.get((c, s))
            if not a:
                continue
            if c == "pipeline":
                p50 = p99 = "n/a"
            else:
                p50, p99 = fmt_lat(a["p50"]), fmt_lat(a["p99"])
            rpc = fmt_f(a["rpc"], 1) if c in ("churn", "close") else ""
            cpu = "—" if a["cpu"] is None else f"{a['cpu']:.0f} %"
            cli = "—" if a["cli"] is None else f"{a['cli']:.0f} %"
            sco = "—" if a["srv_core"] is None else f"{a['srv_core']:.0f} %"
            L.append(f"| {CASE_TITLES.get(c, c)} | {s} | {fmt_rps(a['rps'])} | {fmt_rps(a['min'])}–{fmt_rps(a['max'])} | {p50} | {p99} | "
                     f"{cpu} | {fmt_f(a['usr'])} | {fmt_f(a['sys'])} | {fmt_f(a['tot'])} | {cli} | {sco} | {rpc} | {a['errors']} |")
    L.append("")
    errs = [(c, s, agg[(c, s)]["err_detail"]) for c in cases for s in servers if (c, s) in agg and agg[(c, s)]["errors"]]
    if errs:
        L.append("Errors reported by wrk: " + "; ".join(f"{c}/{s}: {d}" for c, s, d in errs) + ".")
        L.append("")

    if "percore" in servers:
        peers = [s for s in servers if s != "percore"]
        L.append("### percore against each peer")
        L.append("")
        L.append("Each cell: **req/s ratio** (percore's median req/s ÷ the peer's; above 1 = percore served more) / **CPU ratio** (percore's total "
                 "µs/req ÷ the peer's; below 1 = percore spent less CPU per request). When both servers saturated their core the two say the same "
                 "thing; when wrk was the limit, trust the CPU ratio. — = the peer does not run that case.")
        L.append("")
        L.append("| case | " + " | ".join(f"vs {p}" for p in peers) + " |")
        L.append("|---|" + "---:|" * len(peers))
        for c in cases:
            me = agg.get((c, "percore"))
            if not me:
                continue
            cells = []
            for p in peers:
                o = agg.get((c, p))
                if not o or not o["rps"] or not me["rps"]:
                    cells.append("—")
                    continue
                rr = me["rps"] / o["rps"]
                cr = me["tot"] / o["tot"] if me["tot"] and o["tot"] else None
                cells.append(f"{rr:.2f}× / {fmt_f(cr)}×")
            L.append(f"| {CASE_TITLES.get(c, c)} | " + " | ".join(cells) + " |")
        L.append("")

    rounds = sorted({r["round"] for r in rows})
    if len(rounds) > 1:
        L.append("<details><summary>req/s per round (row order = order within a round)</summary>")
        L.append("")
        L.append("| case | server | " + " | ".join(f"r{i}" for i in rounds) + " |")
        L.append("|---|---|" + "---:|" * len(rounds))
        for c in cases:
            for s in servers:
                a = agg.get((c, s))
                if a:
                    L.append(f"| {c} | {s} | " + " | ".join(fmt_rps(a["by_round"].get(i)) for i in rounds) + " |")
        L.append("")
        L.append("</details>")
        L.append("")

    mem_path = os.path.join(rawdir, "mem.csv")
    mem_rows = list(csv.DictReader(open(mem_path))) if os.path.exists(mem_path) else []
    if mem_rows:
        L.append("### (f) Memory per idle keep-alive connection")
        L.append("")
        L.append(f"Fresh server; `bench/idle_conns.py` opens {meta.get('idle_conns', '?')} connections, sends one `GET /plaintext` on each, reads the "
                 f"response and holds them idle {meta.get('idle_hold', '?')} s. VmRSS of the serving process (nginx: its worker) before the client "
                 "starts, ~1 s after all connections are up, and again near the end of the hold (\"settled\": percore parks a connection "
                 "idle for a whole second, handing its buffers back). Kernel socket buffers are not in RSS; `sockstat TCP mem` (pages, whole machine, "
                 "both ends) is given for reference.")
        L.append("")
        L.append("| server | conns held | VmRSS before | VmRSS with conns (+1 s) | RSS bytes / conn (+1 s) | VmRSS settled | RSS bytes / conn settled | sockstat TCP mem before → with | client log |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for m in mem_rows:
            n = int(m["n_open"])
            b, a = int(m["rss_before_kb"]), int(m["rss_after_kb"])
            per = f"{(a - b) * 1024 / n:,.0f}" if n else "—"
            st = int(m.get("rss_settled_kb") or a)
            per_st = f"{(st - b) * 1024 / n:,.0f}" if n else "—"
            L.append(f"| {m['server']} | {n:,} | {b:,} KiB | {a:,} KiB | {per} | {st:,} KiB | {per_st} | {m['tcpmem_before']} → {m['tcpmem_after']} | {m.get('client_log', '')} |")
        L.append("")
        pre = os.path.join(rawdir, "nginx_prealloc.txt")
        if os.path.exists(pre):
            p = open(pre).read().split()
            if len(p) == 4 and int(p[3]) > 0:
                n1, r1, n2, r2 = (int(x) for x in p)
                slot = (r2 - r1) * 1024 / (n2 - n1)
                L.append(f"nginx touches its connection/event structs for every `worker_connections` slot at start-up, so they are in its "
                         f"\"before\" RSS already: a fresh worker has {r1:,} KiB with {n1:,} slots and {r2:,} KiB with {n2:,} slots, ≈{slot:,.0f} B "
                         f"per slot. Its all-in cost per idle connection is about the delta above plus that.")
                L.append("")

    resp_path = os.path.join(rawdir, "resp_sizes.txt")
    if os.path.exists(resp_path):
        sizes = [line.split() for line in open(resp_path) if len(line.split()) == 3]
        L.append("Bytes on the wire per response (headers + body), /plaintext and /json: "
                 + "; ".join(f"{s} {p}/{j}" for s, p, j in sizes) + ".")
        L.append("")

    vers = crate_versions(meta.get("locks", "").split())
    if vers:
        L.append("Crate versions (Cargo.lock): " + "; ".join(f"`{n}`: {', '.join(v)}" for n, v in vers) + ".")
        L.append("")

    L.append("Commands:")
    L.append("")
    L.append("```")
    cmd_path = os.path.join(rawdir, "commands.txt")
    if os.path.exists(cmd_path):
        L.append(open(cmd_path).read().rstrip())
    L.append("```")
    L.append("")
    L.append(f"Raw outputs: `{rawdir}` (not kept).")
    L.append("")

    section = "\n".join(L)
    new = not os.path.exists(out_md) or os.path.getsize(out_md) == 0
    with open(out_md, "a") as f:
        if new:
            f.write(HEADER + "\n")
        f.write(section + "\n")
    print(section)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    report(sys.argv[1], sys.argv[2])
