"""bench/report.sh helper: import the trials of an mlres report (the data block of
report.html) into an Optuna SQLite storage, so Optuna Dashboard shows the same study: each
finished experiment becomes a COMPLETE trial (its config as params, its metric as value, the
objective metric's learning curve as intermediate values); the in-flight one a RUNNING trial.
Prints the RUNNING trial's id.

Usage: python report_optuna_import.py REPORT_HTML SQLITE_PATH
"""
import json
import re
import sys

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

html = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<script id="mlres-data" type="application/json">(.*?)</script>', html, re.S)
data = json.loads(m.group(1))
metric = data["objective"]["metric"]
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = optuna.storages.RDBStorage(f"sqlite:///{sys.argv[2]}")
study = optuna.create_study(study_name="mlres-bench", storage=storage,
                            direction="maximize" if data["objective"]["goal"] != "minimize" else "minimize")
dists = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "layers": IntDistribution(1, 6)}
trials = []
running = None
for e in data["experiments"]:
    curve = {int(x): y for x, y in e["curves"].get(metric, [])}
    if e["state"] in ("reserved", "submitted"):
        running = e
        continue
    trials.append(optuna.trial.create_trial(
        params={k: e["config"][k] for k in dists}, distributions=dists,
        value=e["metric"], intermediate_values=curve,
        state=optuna.trial.TrialState.COMPLETE))
study.add_trials(trials)
if running is not None:
    tid = storage.create_new_trial(study._study_id)
    print(tid)
