"""A synthetic learning curve with crossing curves: fast learners plateau lower.

val_accuracy(t) = final - (final - 0.1) * exp(-t / tau) + noise, with final and tau set by
the configuration (lr, width) and seeded per-epoch noise N(0, 0.004). Prints
`step=<epoch> val_accuracy=<value>` after each of 52 epochs, sleeping EPOCH_SECS per epoch.
Usage: curve_job.py SEED EPOCH_SECS lr width
"""
import math
import random
import sys
import time

seed, epoch_secs = int(sys.argv[1]), float(sys.argv[2])
lr, width = float(sys.argv[3]), float(sys.argv[4])
rng = random.Random(seed)
u = math.log10(lr)  # -4 .. 0
# The best final accuracy is at lr = 1e-2.5 and width 0.7; larger rates learn faster.
final = 0.92 - 0.035 * (u + 2.5) ** 2 - 0.25 * (width - 0.7) ** 2
tau = 2.0 + 30.0 * (1.0 - (u + 4.0) / 4.0) ** 2  # 2 (lr=1) .. 32 epochs (lr=1e-4)
for t in range(1, 53):
    v = final - (final - 0.1) * math.exp(-t / tau) + rng.gauss(0.0, 0.004)
    time.sleep(epoch_secs)
    print(f"step={t} val_accuracy={v:.4f}", flush=True)
