"""Summarises `perf script -F pid,tid,comm` of a system-wide profile by process.

Usage: perf script -F pid,tid,comm | profile_summary.py PHASE DOCUMENTS FREQUENCY
A process is named by its main thread (tid == pid), else by its most frequent thread name;
PostgreSQL's backends are summed as one, the idle task is "idle". Each process's CPU is also
given in microseconds per document: samples ÷ FREQUENCY (perf's samples per second per busy
CPU) ÷ DOCUMENTS.
"""

import collections
import sys

phase, documents, frequency = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
samples = collections.Counter()
thread_names = collections.defaultdict(collections.Counter)
main_name = {}
for line in sys.stdin:
    # "<comm> <pid>/<tid>"; a thread name may hold spaces.
    comm, _, pid_tid = line.strip().rpartition(" ")
    comm = comm.strip()
    pid, slash, tid = pid_tid.partition("/")
    if not slash:
        continue
    samples[pid] += 1
    thread_names[pid][comm] += 1
    if pid == tid:
        main_name[pid] = comm

by_process = collections.Counter()
for pid, n in samples.items():
    name = "idle" if pid == "0" else main_name.get(pid) or thread_names[pid].most_common(1)[0][0]
    if name.startswith("postgres"):
        name = "postgres (all backends)"
    elif name.startswith("elasticsearch") or name == "java":
        name = "elasticsearch"
    by_process[name] += n
total = sum(by_process.values())
print(f"\n{phase}: samples by process, {total} on all cores ({documents} documents)")
print(f"  {'share':>7}  {'µs CPU/doc':>10}  process")
for name, n in by_process.most_common(10):
    print(f"  {100 * n / total:6.2f}%  {n / frequency / documents * 1e6:10.1f}  {name}")
