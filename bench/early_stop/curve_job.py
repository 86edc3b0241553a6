"""A synthetic learning curve: val_accuracy(t) = final - (final - 0.1) * exp(-t / tau) + noise.

final depends on lr (best at 10^-2.5) and width (best at 0.7); tau (how fast it learns) grows
with width, from 3 to 15 epochs, so early ranks mostly but not always agree with final ones.
The noise is seeded per epoch, N(0, 0.004). Prints
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
final = 0.92 - 0.035 * (u + 2.5) ** 2 - 0.25 * (width - 0.7) ** 2
tau = 3.0 + 12.0 * width
for t in range(1, 53):
    v = final - (final - 0.1) * math.exp(-t / tau) + rng.gauss(0.0, 0.004)
    time.sleep(epoch_secs)
    print(f"step={t} val_accuracy={v:.4f}", flush=True)
