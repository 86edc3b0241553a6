// mlres campaign view: renders a report's data (see mlres_engine::report::ReportData) as
// HTML and inline SVG. Used as is by the static report (`mlres report`) and by the live
// dashboard (`mlres serve`). No dependencies, no network. Every string from the data is set
// with textContent or setAttribute, never parsed as HTML: hypotheses, reasons and log lines
// are written by agents and jobs.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x) {
    if (x === null || x === undefined || typeof x !== "number" || !isFinite(x)) return "–";
    if (x !== 0 && (Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3)) return x.toExponential(3);
    return String(Math.round(x * 10000) / 10000);
  }
  function dur(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s.toFixed(1) + "s";
    if (s < 3600) return (s / 60).toFixed(1) + "m";
    return (s / 3600).toFixed(2) + "h";
  }
  function color(i) {
    return "hsl(" + ((i * 137.508) % 360).toFixed(1) + ",65%,45%)";
  }
  function section(root, id, title) {
    var s = el("section", { id: id });
    s.appendChild(el("h2", {}, title));
    root.appendChild(s);
    return s;
  }
  function extent(vals) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < vals.length; i++) {
      if (vals[i] < lo) lo = vals[i];
      if (vals[i] > hi) hi = vals[i];
    }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    var pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  }

  // A chart frame: axes with their ranges; returns the svg and the scale functions.
  function frame(attrs, xs, ys, xlabel, ylabel) {
    var W = 560, H = 230, L = 62, R = 12, T = 12, B = 36;
    var svg = sv("svg", Object.assign({ viewBox: "0 0 " + W + " " + H, class: "chart", role: "img" }, attrs));
    var xe = extent(xs), ye = extent(ys);
    var sx = function (x) { return L + (x - xe[0]) / (xe[1] - xe[0]) * (W - L - R); };
    var sy = function (y) { return H - B - (y - ye[0]) / (ye[1] - ye[0]) * (H - T - B); };
    svg.appendChild(sv("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "plot" }));
    for (var i = 0; i <= 4; i++) {
      var yv = ye[0] + (ye[1] - ye[0]) * i / 4, xv = xe[0] + (xe[1] - xe[0]) * i / 4;
      svg.appendChild(sv("line", { x1: L, x2: W - R, y1: sy(yv), y2: sy(yv), class: "grid" }));
      svg.appendChild(sv("text", { x: L - 6, y: sy(yv) + 4, "text-anchor": "end", class: "tick" }, fmt(yv)));
      svg.appendChild(sv("text", { x: sx(xv), y: H - B + 14, "text-anchor": "middle", class: "tick" }, fmt(xv)));
    }
    svg.appendChild(sv("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "label" }, xlabel));
    svg.appendChild(sv("text", { x: 12, y: (T + H - B) / 2, "text-anchor": "middle", class: "label",
      transform: "rotate(-90 12 " + (T + H - B) / 2 + ")" }, ylabel));
    // Kept on the element so the live view can add points in place while they fit.
    svg.mlresScale = { sx: sx, sy: sy, xe: xe, ye: ye };
    return { svg: svg, sx: sx, sy: sy };
  }

  function figure(parent, title, node) {
    var f = el("figure");
    f.appendChild(el("figcaption", {}, title));
    f.appendChild(node);
    parent.appendChild(f);
    return f;
  }

  function header(root, d) {
    var h = el("header", { id: "head" });
    h.appendChild(el("h1", {}, "Campaign " + d.campaign.id));
    var st = el("span", { class: "badge " + d.campaign.status, id: "campaign-status" }, d.campaign.status);
    h.appendChild(st);
    if (d.campaign.stop_reason) h.appendChild(el("p", { class: "why" }, "Stop reason: " + d.campaign.stop_reason));
    var o = d.objective || {};
    if (o.metric) {
      h.appendChild(el("p", {}, "Objective: " + (o.goal || "") + " " + o.metric +
        (o.target !== null && o.target !== undefined ? " (target " + fmt(o.target) + ")" : "")));
    }
    root.appendChild(h);
  }

  function kv(parent, obj) {
    var t = el("table", { class: "kv" });
    Object.keys(obj || {}).forEach(function (k) {
      var v = obj[k];
      var tr = el("tr");
      tr.appendChild(el("th", {}, k));
      tr.appendChild(el("td", {}, v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v)));
      t.appendChild(tr);
    });
    parent.appendChild(t);
  }

  function approval(root, d) {
    var s = section(root, "approval", "Approved envelope");
    var a = d.approval;
    if (!a) { s.appendChild(el("p", {}, "No approval is recorded for this campaign.")); return; }
    s.appendChild(el("p", { id: "approved-by" }, "Approved by " + a.approver + " at " + a.approved_at +
      " (approval " + a.id + ", sha256 " + a.hash.slice(0, 16) + "…)"));
    kv(s, a.envelope);
  }

  function gauges(root, d) {
    var s = section(root, "budget", "Budget");
    var g = el("div", { class: "gauges" });
    (d.budget || []).forEach(function (b) {
      var frac = b.max ? Math.min(1, b.used / b.max) : 0;
      var box = el("div", { class: "gauge", "data-gauge": b.name });
      box.appendChild(el("div", { class: "gname" }, { jobs: "Jobs", walltime: "Walltime", cost: "Cost", gpu_hours: "GPU-hours" }[b.name] || b.name));
      var used = b.unit === "s" ? dur(b.used) : fmt(b.used);
      var max = b.max === null || b.max === undefined ? "no cap" : (b.unit === "s" ? dur(b.max) : fmt(b.max));
      var bar = sv("svg", { viewBox: "0 0 200 14", class: "bar" });
      bar.appendChild(sv("rect", { x: 0, y: 0, width: 200, height: 14, class: "track" }));
      bar.appendChild(sv("rect", { x: 0, y: 0, width: (200 * frac).toFixed(1), height: 14,
        class: frac > 0.9 ? "fill hot" : "fill" }));
      box.appendChild(bar);
      box.appendChild(el("div", { class: "gval" }, used + " / " + max + (b.unit === "s" ? "" : " " + b.unit)));
      g.appendChild(box);
    });
    s.appendChild(g);
  }

  function bestChart(root, d) {
    var s = section(root, "best", "Best so far");
    var pts = d.best_so_far || [];
    if (!pts.length) { s.appendChild(el("p", {}, "No experiment has a usable result yet.")); return; }
    var f = frame({ id: "chart-best", "data-n": pts.length },
      pts.map(function (p) { return p.iter; }), pts.map(function (p) { return p.best; }),
      "experiment (iteration)", (d.objective && d.objective.metric) || "metric");
    var line = pts.map(function (p) { return f.sx(p.iter).toFixed(1) + "," + f.sy(p.best).toFixed(1); }).join(" ");
    f.svg.appendChild(sv("polyline", { points: line, class: "series", stroke: color(0) }));
    pts.forEach(function (p) {
      var c = sv("circle", { cx: f.sx(p.iter).toFixed(1), cy: f.sy(p.best).toFixed(1), r: 2.5, class: "pt", fill: color(0) });
      c.appendChild(sv("title", {}, "iter " + p.iter + " (exp " + p.exp + "): " + fmt(p.best)));
      f.svg.appendChild(c);
    });
    figure(s, "best " + ((d.objective && d.objective.metric) || "metric") + " after each experiment", f.svg);
  }

  function curves(root, d) {
    var s = section(root, "curves", "Learning curves");
    var keys = {};
    d.experiments.forEach(function (e) { Object.keys(e.curves || {}).forEach(function (k) { keys[k] = true; }); });
    var names = Object.keys(keys).sort();
    if (!names.length) { s.appendChild(el("p", {}, "No metric lines were captured yet.")); return; }
    var grid = el("div", { class: "charts" });
    names.forEach(function (k) {
      var xs = [], ys = [];
      d.experiments.forEach(function (e) {
        (e.curves[k] || []).forEach(function (p) { xs.push(p[0]); ys.push(p[1]); });
      });
      var f = frame({ "data-metric": k }, xs, ys, "step", k);
      d.experiments.forEach(function (e, i) {
        var pts = e.curves[k];
        if (!pts || !pts.length) return;
        var attrs = {
          points: pts.map(function (p) { return f.sx(p[0]).toFixed(1) + "," + f.sy(p[1]).toFixed(1); }).join(" "),
          class: "series" + (e.decision === "keep" ? " kept" : ""), stroke: color(i),
          "data-exp": e.id, "data-n": pts.length
        };
        var pl = sv("polyline", attrs);
        pl.appendChild(sv("title", {}, "exp " + e.id + " (iter " + e.iter + ")"));
        f.svg.appendChild(pl);
        if (pts.length === 1) {
          f.svg.appendChild(sv("circle", { cx: f.sx(pts[0][0]), cy: f.sy(pts[0][1]), r: 2, fill: color(i) }));
        }
      });
      figure(grid, k + " per experiment", f.svg);
    });
    s.appendChild(grid);
  }

  function scatter(root, d) {
    var s = section(root, "params", "Hyperparameters against the metric");
    var metric = (d.objective && d.objective.metric) || "metric";
    var done = d.experiments.filter(function (e) { return typeof e.metric === "number"; });
    if (!done.length || !(d.params || []).length) {
      s.appendChild(el("p", {}, "No experiment has a metric yet."));
      return;
    }
    var grid = el("div", { class: "charts" });
    d.params.forEach(function (p) {
      var cats = [], vals = done.map(function (e) { return e.config ? e.config[p] : undefined; });
      var numeric = vals.every(function (v) { return typeof v === "number"; });
      var xs = vals.map(function (v) {
        if (numeric) return v;
        var key = JSON.stringify(v === undefined ? null : v), i = cats.indexOf(key);
        if (i < 0) { cats.push(key); i = cats.length - 1; }
        return i;
      });
      var ys = done.map(function (e) { return e.metric; });
      var f = frame({ "data-param": p, "data-n": done.length }, xs, ys, p + (numeric ? "" : " (" + cats.join(", ") + ")"), metric);
      done.forEach(function (e, i) {
        var c = sv("circle", { cx: f.sx(xs[i]).toFixed(1), cy: f.sy(ys[i]).toFixed(1), r: 3.5,
          class: "pt" + (e.decision === "keep" ? " kept" : ""), "data-exp": e.id });
        c.appendChild(sv("title", {}, "exp " + e.id + ": " + p + "=" + JSON.stringify(e.config[p]) + ", " + metric + "=" + fmt(e.metric)));
        f.svg.appendChild(c);
      });
      figure(grid, metric + " against " + p, f.svg);
    });
    s.appendChild(grid);
  }

  var COLUMNS = ["iter", "exp", "status", "metric", "decision", "reason", "duration", "cost", "job id", "hub", "config", "hypothesis"];
  function table(root, d, opts) {
    var s = section(root, "table", "Experiments");
    var t = el("table", { id: "experiments" });
    var hr = el("tr");
    COLUMNS.forEach(function (c) { hr.appendChild(el("th", {}, c)); });
    var th = el("thead"); th.appendChild(hr); t.appendChild(th);
    var tb = el("tbody");
    d.experiments.forEach(function (e) {
      var tr = el("tr", { "data-exp": e.id, class: e.decision || e.state });
      var cells = [e.iter, e.id, e.status || e.state, fmt(e.metric), e.decision || "–",
        e.reason || e.error || "–", e.duration_ms === null ? "–" : dur(e.duration_ms / 1000),
        "$" + e.cost_usd.toFixed(2), e.job_id || "–", null, JSON.stringify(e.config), e.hypothesis];
      cells.forEach(function (v, i) {
        var td = el("td", { class: "c-" + COLUMNS[i].replace(" ", "-") });
        if (i === 9) {
          if (e.hub_url && /^https?:\/\//.test(e.hub_url)) {
            td.appendChild(el("a", { href: e.hub_url, rel: "noopener noreferrer" }, "hub"));
          } else td.textContent = "–";
        } else td.textContent = String(v);
        tr.appendChild(td);
      });
      if (opts && opts.onRow) opts.onRow(tr, e);
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    s.appendChild(t);
  }

  function audit(root, d) {
    var s = section(root, "audit", "Audit trail");
    var a = d.audit;
    s.appendChild(el("p", { id: "verify", class: a.verify_ok ? "ok" : "bad" },
      a.verify_ok ? "Ledger verified: " + a.verified_events + " events, chain intact."
        : "Ledger verification FAILED: " + a.problems.join("; ")));
    var t = el("table", { id: "events" });
    var hr = el("tr");
    ["seq", "time", "event", "payload"].forEach(function (c) { hr.appendChild(el("th", {}, c)); });
    t.appendChild(hr);
    a.events.forEach(function (e) {
      var tr = el("tr");
      [e.seq, e.time, e.kind, e.summary].forEach(function (v, i) {
        tr.appendChild(el("td", { class: i === 3 ? "payload" : "" }, v));
      });
      t.appendChild(tr);
    });
    var det = el("details");
    det.appendChild(el("summary", {}, a.events.length + " events of this campaign and its approval"));
    det.appendChild(t);
    s.appendChild(det);
  }

  function manifests(root, d) {
    var s = section(root, "manifests", "Dataset and code manifests");
    [["datasets", d.datasets], ["code", d.code]].forEach(function (m) {
      s.appendChild(el("h3", {}, m[0]));
      if (m[1] === null || m[1] === undefined) { s.appendChild(el("p", {}, "None pinned with the approval.")); return; }
      s.appendChild(el("pre", { class: "manifest", id: "manifest-" + m[0] }, JSON.stringify(m[1], null, 2)));
    });
  }

  var SECTIONS = { head: header, approval: approval, budget: gauges, best: bestChart, curves: curves,
    params: scatter, table: table, audit: audit, manifests: manifests };
  var ORDER = ["head", "approval", "budget", "best", "curves", "params", "table", "audit", "manifests"];

  function bump(root) {
    root.setAttribute("data-rendered", String((root.getAttribute("data-rendered") | 0) + 1));
  }

  function render(root, d, opts) {
    while (root.firstChild) root.removeChild(root.firstChild);
    ORDER.forEach(function (n) { SECTIONS[n](root, d, opts); });
    bump(root);
  }

  // Redraws only the named sections, in place (the live view, when only curves grew).
  function update(root, d, names, opts) {
    names.forEach(function (n) {
      var tmp = document.createElement("div");
      SECTIONS[n](tmp, d, opts);
      var fresh = tmp.firstChild, old = document.getElementById(fresh.id);
      if (old && old.parentNode === root) root.replaceChild(fresh, old); else root.appendChild(fresh);
    });
    bump(root);
  }

  // Redraws the curves of experiments `ids` in place when every point fits the charts' current
  // axes; returns false (nothing changed) when a chart would need new axes or is missing.
  function patchCurves(root, d, ids) {
    var work = [];
    for (var n = 0; n < ids.length; n++) {
      var i = -1;
      for (var j = 0; j < d.experiments.length; j++) if (d.experiments[j].id === ids[n]) { i = j; break; }
      if (i < 0) return false;
      var e = d.experiments[i];
      for (var k in e.curves) {
        var svg = null, charts = root.querySelectorAll("svg[data-metric]");
        for (var c = 0; c < charts.length; c++) if (charts[c].getAttribute("data-metric") === k) svg = charts[c];
        if (!svg || !svg.mlresScale) return false;
        var m = svg.mlresScale, pts = e.curves[k];
        for (var p = 0; p < pts.length; p++) {
          if (pts[p][0] < m.xe[0] || pts[p][0] > m.xe[1] || pts[p][1] < m.ye[0] || pts[p][1] > m.ye[1]) return false;
        }
        work.push([svg, e, i, pts]);
      }
    }
    work.forEach(function (w) {
      var svg = w[0], e = w[1], m = svg.mlresScale, pl = null, lines = svg.querySelectorAll("polyline[data-exp]");
      for (var q = 0; q < lines.length; q++) if (lines[q].getAttribute("data-exp") === String(e.id)) pl = lines[q];
      if (!pl) {
        pl = sv("polyline", { class: "series", stroke: color(w[2]), "data-exp": e.id });
        pl.appendChild(sv("title", {}, "exp " + e.id + " (iter " + e.iter + ")"));
        svg.appendChild(pl);
      }
      pl.setAttribute("points", w[3].map(function (p) { return m.sx(p[0]).toFixed(1) + "," + m.sy(p[1]).toFixed(1); }).join(" "));
      pl.setAttribute("data-n", String(w[3].length));
    });
    bump(root);
    return true;
  }

  window.mlresView = { render: render, update: update, patchCurves: patchCurves, el: el };
})();
