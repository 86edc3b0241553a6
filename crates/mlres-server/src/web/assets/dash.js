// mlres live dashboard: loads a campaign's report data, then applies the patches the server
// sends over Server-Sent Events as the ledger and the jobs' logs change. Same-origin requests
// only; the session cookie carries the token.
(function () {
  "use strict";
  var V = window.mlresView;
  var root = document.getElementById("app");
  var nav = document.getElementById("nav");
  var live = document.getElementById("live");
  var controls = document.getElementById("controls");
  var allowStop = document.body.getAttribute("data-allow-stop") === "true";
  var csrf = document.querySelector("meta[name=mlres-csrf]").getAttribute("content");
  var state = null, cid = null, updates = 0;

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  function showLogs(e) {
    var title = document.getElementById("log-title");
    var pre = document.getElementById("log-text");
    title.textContent = "Experiment " + e.id + " (iter " + e.iter + "), end of stdout:";
    fetch("/api/experiments/" + e.id + "/log?stream=stdout", { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (t) { pre.textContent = t; });
  }

  var opts = { onRow: function (tr, e) { tr.addEventListener("click", function () { showLogs(e); }); } };
  function draw(onlyCurves) {
    if (onlyCurves) {
      if (!V.patchCurves(root, state, onlyCurves)) V.update(root, state, ["curves"], opts);
    } else V.render(root, state, opts);
    updates += 1;
    document.body.setAttribute("data-updates", String(updates));
    controls.textContent = "";
    if (allowStop && state.campaign.status === "active" && !state.campaign.stop_requested) {
      var b = V.el("button", { id: "stop" }, "Stop this campaign (loop stop)");
      b.addEventListener("click", stop);
      controls.appendChild(b);
    }
  }

  function rowOf(e) {
    var c = {};
    for (var k in e) if (k !== "curves") c[k] = e[k];
    return JSON.stringify(c);
  }

  // Applies a patch; returns the experiments whose curves changed when nothing else did.
  function apply(p) {
    var onlyCurves = p.events.length === 0;
    state.campaign = p.campaign;
    state.budget = p.budget;
    state.best_so_far = p.best_so_far;
    state.params = p.params;
    p.experiments.forEach(function (e) {
      var i = -1;
      for (var j = 0; j < state.experiments.length; j++) if (state.experiments[j].id === e.id) { i = j; break; }
      if (i < 0 || rowOf(state.experiments[i]) !== rowOf(e)) onlyCurves = false;
      if (i >= 0 && p.curves_updated.indexOf(e.id) < 0) e.curves = state.experiments[i].curves;
      if (i >= 0) state.experiments[i] = e; else state.experiments.push(e);
    });
    state.experiments.sort(function (a, b) { return a.iter - b.iter || a.id - b.id; });
    state.audit.events = state.audit.events.concat(p.events);
    return onlyCurves ? p.curves_updated : null;
  }

  function connect() {
    var es = new EventSource("/api/campaigns/" + encodeURIComponent(cid) + "/events");
    es.addEventListener("snapshot", function (ev) { state = JSON.parse(ev.data); draw(); live.textContent = "live"; });
    es.addEventListener("patch", function (ev) {
      if (!state) return;
      draw(apply(JSON.parse(ev.data)));
      live.textContent = "live · updated " + new Date().toLocaleTimeString();
    });
    es.addEventListener("failure", function (ev) { live.textContent = "error: " + ev.data; });
    es.onerror = function () { live.textContent = "disconnected; retrying…"; };
  }

  function stop() {
    if (!window.confirm("Stop campaign " + cid + "? Jobs in flight are cancelled.")) return;
    fetch("/api/campaigns/" + encodeURIComponent(cid) + "/stop", {
      method: "POST", credentials: "same-origin", headers: { "X-Mlres-Csrf": csrf }
    }).then(function (r) { return r.text().then(function (t) { live.textContent = (r.ok ? "" : "refused: ") + t; }); });
  }

  getJSON("/api/campaigns").then(function (list) {
    var want = new URLSearchParams(window.location.search).get("campaign");
    cid = want || (list.length ? list[list.length - 1].id : null);
    list.forEach(function (c) {
      var a = V.el("a", { href: "/?campaign=" + encodeURIComponent(c.id), class: c.id === cid ? "current" : "" },
        c.id + " (" + c.status + ")");
      nav.appendChild(a);
    });
    if (!cid) { live.textContent = "No campaign yet in this project."; return; }
    connect();
  }).catch(function (e) { live.textContent = String(e); });
})();
