"""One LCBench trial as a job (bench/search.sh's full-loop run): evaluates the YAHPO Gym
LCBench surrogate at epoch 52 for the configuration on the command line and prints
`<metric>=<val accuracy in percent>` for mlres (or Optuna) to read (default metric name
`val_pct`: mlres reads a metric named like `*accuracy` as a fraction in [0, 1])."""

import argparse
import json
import os

import numpy as np
import onnxruntime as rt

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--task", required=True)
ap.add_argument("--metric", default="val_pct")
for name in ("batch_size", "learning_rate", "max_dropout", "max_units", "momentum", "num_layers",
             "weight_decay"):
    ap.add_argument(f"--{name}", type=float, required=True)
a = ap.parse_args()
opts = rt.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
sess = rt.InferenceSession(os.path.join(a.data, "model.onnx"), opts)
with open(os.path.join(a.data, "encoding.json")) as f:
    task = json.load(f)["OpenML_task_id"][a.task]
cont = np.array([[52, a.batch_size, a.learning_rate, a.momentum, a.weight_decay, a.num_layers,
                  a.max_units, a.max_dropout]], dtype=np.float32)
ins = [i.name for i in sess.get_inputs()]
y = sess.run([sess.get_outputs()[0].name], {ins[0]: np.array([[task]], dtype=np.int32), ins[1]: cont})
print(f"{a.metric}={float(y[0][0][1])}")
