"""Runs `mlres data audit` (argv[2:]), writes its stdout to argv[1] and prints
{"code", "seconds", "cpu_seconds"} (wall clock and user+system CPU of the child)."""
import json
import resource
import subprocess
import sys
import time

out_path, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
with open(out_path, "wb") as out:
    code = subprocess.call(cmd, stdout=out)
secs = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"code": code, "seconds": secs, "cpu_seconds": ru.ru_utime + ru.ru_stime}, sys.stdout)
