#!/usr/bin/env python3
"""Summarises a trace of the S4 router's socket I/O: `perf trace` output
(preferred: it does not stop the traced process) or `strace -f -T -s 0`.

Usage: s4-strace.py TRACE FDMAP MIB MSGS

TRACE: the perf trace or strace output (-o file). FDMAP: lines "FD NAME"
naming the router's sockets (e.g. "7 A/fd7", "9 B/fd9"; other fds show as
"fd N"). MIB: MiB forwarded meanwhile; MSGS: LNet messages forwarded
meanwhile.

Prints, per system call and per socket: calls per MiB, calls that moved
bytes and their mean size, EAGAINs per MiB, and for strace's writev the
partial ones (fewer bytes than asked); epoll_wait's events per call; and
the total per MiB and per forwarded message.
"""

import collections
import re
import sys

trace, fdmap, mib, msgs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
names = {}
for line in open(fdmap):
    w = line.split(None, 1)
    if len(w) == 2:
        names[w[0]] = w[1].strip()

# perf trace: "  154.511 ( 0.035 ms): lnetd/7310 recvfrom(fd: 4, ...)  = 100";
# a call that blocked shows as "... epoll_wait(...) ..." and later
# "... [continued]: epoll_wait())  = 1".
PERF = re.compile(r"^\s*[\d.]+ \(\s*[\d.]*\s*(?:ms)?\):\s+\S+\s+(?:\.\.\. \[continued\]: )?(\w+)\((.*)$")
PERF_RET = re.compile(r"\)\s+=\s+(-?\d+)(?:\s+(E[A-Z]+))?")
PERF_FD = re.compile(r"^fd: (\d+)")
# strace -f: "123 recvfrom(7, ""..., 1048576, 0, NULL, NULL) = 65536 <0.000020>",
# split calls: "123 epoll_wait(3, <unfinished ...>" and
# "123 <... epoll_wait resumed>[...], 1024, 10) = 1 <0.001>".
CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((.*)$")
RESUMED = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+<\.\.\. (\w+) resumed>(.*)$")
RET = re.compile(r"\)\s+=\s+(-?\d+|\?)(?:\s+(E[A-Z]+))?")
IOVLEN = re.compile(r"iov_len=(\d+)")
NOFD = ("epoll_wait", "epoll_pwait", "futex", "sched_yield")

stats = collections.defaultdict(collections.Counter)
total = 0


def count(name, fd, rv, err, args):
    global total
    total += 1
    key = (name, "") if name in NOFD else (name, names.get(fd, f"fd {fd}"))
    s = stats[key]
    s["calls"] += 1
    if err == "EAGAIN":
        s["eagain"] += 1
        return
    if rv == "?" or rv.startswith("-"):
        return
    n = int(rv)
    if name.startswith("epoll"):
        s["events"] += n
        s["empty"] += n == 0
    elif n > 0 and name != "setsockopt":
        s["moved"] += 1
        s["bytes"] += n
        if name == "writev":
            asked = IOVLEN.findall(args)
            if asked and n < sum(map(int, asked)):
                s["partial"] += 1


pending = {}
for line in open(trace):
    line = line.rstrip("\n")
    p = PERF.match(line)
    if p:
        if line.rstrip().endswith(") ..."):
            continue  # its [continued] line carries the result
        ret = PERF_RET.search(p.group(2))
        fdm = PERF_FD.match(p.group(2))
        count(p.group(1), fdm.group(1) if fdm else "?",
              ret.group(1) if ret else "?", ret.group(2) if ret else None, p.group(2))
        continue
    m = CALL.match(line)
    if m and "<unfinished ...>" in line:
        pending[m.group(1)] = (m.group(2), m.group(3).replace("<unfinished ...>", ""))
        continue
    r = RESUMED.match(line)
    if r:
        if r.group(1) not in pending:
            continue
        name, args = pending.pop(r.group(1))
        args += r.group(3)
    elif m:
        name, args = m.group(2), m.group(3)
    else:
        continue
    ret = RET.search(args)
    count(name, args.split(",", 1)[0].strip(),
          ret.group(1) if ret else "?", ret.group(2) if ret else None, args)


def per(n, d):
    return f"{n / d:.2f}" if d else "nan"


print(f"socket calls of the router: {total} over {mib:.0f} MiB, {msgs:.0f} forwarded messages: "
      f"{per(total, mib)} calls/MiB, {per(total, msgs)} calls/msg")
for (name, who), s in sorted(stats.items(), key=lambda kv: -kv[1]["calls"]):
    out = f"  {name:<11} {who:<8} {per(s['calls'], mib):>7} /MiB"
    if s["moved"]:
        out += f", {per(s['moved'], mib)} moving bytes (mean {s['bytes'] / s['moved'] / 1024:.1f} KiB)"
    if s["eagain"]:
        out += f", {per(s['eagain'], mib)} EAGAIN"
    if s["partial"]:
        out += f", {per(s['partial'], mib)} partial"
    if name.startswith("epoll"):
        out += f", {per(s['events'], s['calls'])} events per call, {per(s['empty'], mib)} returned none"
    print(out)
