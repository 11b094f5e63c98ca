#!/usr/bin/env python3
"""Run a command and report the CPU time that groups of processes spent while it ran.

Usage: scripts/cpu_of.py NAME[,NAME...] -- COMMAND [ARG...]
Each NAME is looked for in the process's command line (e.g. `gateway`, `beam.smp`, or a
database name, which PostgreSQL shows in the command line of the backends serving it).
Processes are sampled every 50 ms from /proc, so a process that ends between samples loses at
most its last 50 ms. Prints one line per NAME on stderr: `cpu NAME SECONDS`, then exits with
the command's status. On a shared machine this measures the work done, not the wall time that
other jobs stretch: capacity on N idle cores is about N / (CPU seconds per item).
"""
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def sample(names, seen):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        starttime = fields[19]
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        for name in names:
            if name in cmdline:
                seen[(pid, starttime)] = (name, cpu)


def main():
    if "--" not in sys.argv:
        sys.exit(__doc__)
    split = sys.argv.index("--")
    names = sys.argv[1].split(",")
    command = sys.argv[split + 1 :]
    before = {}
    sample(names, before)
    seen = dict(before)
    child = subprocess.Popen(command)
    while child.poll() is None:
        sample(names, seen)
        time.sleep(0.05)
    sample(names, seen)
    for name in names:
        total = sum(cpu - before.get(key, (name, 0.0))[1] for key, (n, cpu) in seen.items() if n == name)
        print(f"cpu {name} {total:.2f}", file=sys.stderr)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
