"""One LCBench trial, epoch by epoch, from the YAHPO Gym surrogate (model.onnx via onnxruntime).

Prints `step=<epoch> val_accuracy=<percent>` after each epoch, sleeping EPOCH_SECS per epoch
so that a trial costs walltime in proportion to the epochs it trains (what early stopping saves).
Usage: lcbench_job.py MODEL TASK_CODE EPOCH_SECS batch_size learning_rate momentum weight_decay
       num_layers max_units max_dropout
"""
import sys
import time

import numpy as np
import onnxruntime as ort

model, task, epoch_secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
bs, lr, mom, wd, layers, units, drop = (float(a) for a in sys.argv[4:11])
# The surrogate's inputs: integer hyperparameters as integers (the search draws floats).
bs, layers, units = round(bs), round(layers), round(units)
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(model, opts)
epochs = np.arange(1, 53, dtype=np.float32)
x = np.array([[e, bs, lr, mom, wd, layers, units, drop] for e in epochs], dtype=np.float32)
cat = np.full((len(epochs), 1), task, dtype=np.int32)
val_acc = sess.run(None, {"x_cat": cat, "x_cont": x})[0][:, 1]
for e, v in zip(epochs, val_acc):
    time.sleep(epoch_secs)
    print(f"step={int(e)} val_accuracy={float(v):.4f}", flush=True)
