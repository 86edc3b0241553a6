"""bench/report.sh helper: times the mlres dashboard and Optuna Dashboard in the same headless
Chromium (Debian's, through chromedriver and Selenium).

- load: from navigation to the campaign fully drawn (mlres: every experiment row and chart;
  Optuna: the study page's four plots);
- update: from a metric line appended to the in-flight job's captured log (mlres) or an
  intermediate value reported for the RUNNING trial (Optuna) to the browser showing it
  (mlres: that experiment's curve has the new point; Optuna: the page's plotted points change).

Usage: python report_browser.py MLRES_URL EXPECTED_ROWS RUNNING_LOG RUNNING_EXP METRIC
                                OPTUNA_URL OPTUNA_DB OPTUNA_TRIAL REPS
Prints one JSON object with every measurement in seconds.
"""
import json
import sys
import time

import optuna
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

(mlres_url, rows, log_path, exp, metric, optuna_url, optuna_db, trial_id, reps) = sys.argv[1:10]
rows, exp, trial_id, reps = int(rows), int(exp), int(trial_id), int(reps)
TIMEOUT = 120


def chrome():
    o = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,2400"]:
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def until(d, script, ok, poll=0.01):
    t0 = time.monotonic()
    while True:
        v = d.execute_script(script)
        if ok(v):
            return v
        if time.monotonic() - t0 > TIMEOUT:
            raise TimeoutError(f"{script} -> {v}")
        time.sleep(poll)


out = {"mlres_load": [], "optuna_load": [], "mlres_update": [], "optuna_update": []}
d = chrome()
step = 0
storage = optuna.storages.RDBStorage(f"sqlite:///{optuna_db}")
POINTS = "return document.querySelectorAll('.js-plotly-plot path.point').length"
for rep in range(reps):
    d.get("about:blank")
    t0 = time.monotonic()
    d.get(mlres_url)
    until(d, "var t = document.querySelectorAll('#experiments tbody tr').length;"
             "var c = document.querySelectorAll('svg[data-metric] polyline[data-exp]').length;"
             "return t + ':' + (c > 0)", lambda v: v == f"{rows}:true")
    out["mlres_load"].append(time.monotonic() - t0)
    # The in-flight job writes one metric line.
    step += 1
    sel = f"svg[data-metric=\"{metric}\"] polyline[data-exp=\"{exp}\"]"
    with open(log_path, "a") as f:
        t0 = time.monotonic()
        f.write(f"step={step} loss={1.0 / step:.5f} {metric}={0.5 + 0.001 * step:.5f}\n")
        f.flush()
    until(d, f"var p = document.querySelector('{sel}'); return p ? p.getAttribute('data-n') : null",
          lambda v: v == str(step))
    out["mlres_update"].append(time.monotonic() - t0)

    d.get("about:blank")
    t0 = time.monotonic()
    d.get(optuna_url)
    until(d, "return document.querySelectorAll('.js-plotly-plot').length", lambda v: v >= 4, 0.02)
    until(d, POINTS, lambda v: v > 0, 0.02)
    out["optuna_load"].append(time.monotonic() - t0)
    time.sleep(1)
    before = d.execute_script(POINTS)
    t0 = time.monotonic()
    storage.set_trial_intermediate_value(trial_id, step, 0.5 + 0.001 * step)
    try:
        until(d, POINTS, lambda v: v != before, 0.05)
        out["optuna_update"].append(time.monotonic() - t0)
    except TimeoutError:
        out["optuna_update"].append(None)
d.quit()
print(json.dumps(out))
