"""Run one command; write its wall time, its CPU time (user + system) and its own peak RSS to a file: `python -S _measure.py OUT -- ARGV...`.

A harness that forks a child directly would see its own memory in the child's ru_maxrss (Linux keeps the peak of
the forked image across exec), so the benchmarks spawn through this small process instead: it imports nothing but
os, sys and time, and its floor (~10 MB) is below any real reading. stdin, stdout and stderr are inherited.
"""

import os
import sys
import time

out_path, sep, *argv = sys.argv[1:]
assert sep == "--" and argv, "usage: _measure.py OUT -- ARGV..."
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
with open(out_path, "w") as f:
    f.write(f"{elapsed} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {usage.ru_utime + usage.ru_stime}\n")
