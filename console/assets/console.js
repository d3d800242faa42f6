// Nightshift console script: live refresh over server-sent events, actions
// through the JSON API, and the item detail panel. Plain browser JavaScript,
// no build step, nothing loaded from elsewhere.
"use strict";
(function () {
  // The status area. `link` (optional) is {href, text}; `outcome` is
  // "pending", "applied" or "rejected" for actions followed to the
  // leader's answer. Text only (textContent): nothing here is parsed as HTML.
  function toast(text, bad, link, outcome, keepMs) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = text;
    if (link) {
      t.appendChild(document.createTextNode(" "));
      var a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      t.appendChild(a);
    }
    t.className = "show" + (bad ? " bad" : outcome === "applied" ? " ok" : "");
    if (outcome) t.setAttribute("data-outcome", outcome); else t.removeAttribute("data-outcome");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.className = ""; }, keepMs || 6000);
  }

  // --- time zones: every <time data-ms> and SVG tick label (data-ms,
  // data-fmt) is written by the server in UTC; this rewrites them in the
  // zone chosen in the header (UTC, the DAG's zone, the browser's),
  // remembered in localStorage. "DAG zone" is the data-zone of the nearest
  // element that has one (the <time> itself on a list about several DAGs,
  // else the body on a page about one); where there is none, UTC.
  var ZONE_KEY = "nightshift.tz";
  function zoneChoice() {
    try { return localStorage.getItem(ZONE_KEY) || "utc"; } catch (e) { return "utc"; }
  }
  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  }
  var formats = {};
  function partsIn(ms, zone) {
    var f = formats[zone];
    if (!f) {
      try {
        f = new Intl.DateTimeFormat("en-US", { timeZone: zone, year: "numeric", month: "2-digit",
          day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
          timeZoneName: "short" });
      } catch (e) {
        return null; // an unknown zone: the text stays as the server wrote it
      }
      formats[zone] = f;
    }
    var p = {};
    f.formatToParts(new Date(ms)).forEach(function (x) { p[x.type] = x.value; });
    return p;
  }
  function zoneOf(el, choice) {
    if (choice === "browser") return browserZone();
    if (choice === "dag") {
      var holder = el.closest("[data-zone]");
      if (holder) return holder.getAttribute("data-zone");
    }
    return "UTC";
  }
  // `2024-03-31 02:00:00Z` in UTC (as the server writes it), else
  // `2024-03-31 04:00:00 GMT+2`; tick labels as HH:MM, HH:MM:SS or
  // HH:MM:SS.mmm (pages/time_axis.rs).
  function formatIn(ms, zone, fmt) {
    var p = partsIn(ms, zone);
    if (!p) return null;
    var hm = p.hour + ":" + p.minute;
    if (fmt === "hm") return hm;
    if (fmt === "hms") return hm + ":" + p.second;
    if (fmt === "hmsf") return hm + ":" + p.second + "." + String(ms % 1000 + 1000).slice(1);
    var day = p.year + "-" + p.month + "-" + p.day + " " + hm + ":" + p.second;
    return zone === "UTC" ? day + "Z" : day + " " + p.timeZoneName;
  }
  function applyZone() {
    var choice = zoneChoice();
    document.querySelectorAll("time[data-ms], svg text[data-ms]").forEach(function (el) {
      var ms = Number(el.getAttribute("data-ms"));
      var text = formatIn(ms, zoneOf(el, choice), el.getAttribute("data-fmt"));
      if (text !== null && el.textContent !== text) el.textContent = text;
      if (el.tagName.toLowerCase() === "time") el.title = formatIn(ms, "UTC", null) || "";
    });
    document.querySelectorAll("svg text.tz-name").forEach(function (el) {
      el.textContent = zoneOf(el, choice);
    });
    document.body.setAttribute("data-tz", choice);
  }
  (function zoneControl() {
    var select = document.getElementById("tz");
    var box = document.getElementById("tz-choice");
    var note = document.getElementById("tz-note");
    if (!select || !box) return;
    var pageZone = document.body.getAttribute("data-zone");
    select.querySelector("option[value=dag]").textContent = pageZone ? "DAG zone (" + pageZone + ")" :
      document.querySelector("time[data-zone]") ? "DAG zone (each row's)" : "DAG zone (none here: UTC)";
    select.querySelector("option[value=browser]").textContent = "browser zone (" + browserZone() + ")";
    select.value = zoneChoice();
    if (!select.value) select.value = "utc";
    box.hidden = false;
    if (note) note.hidden = true;
    select.addEventListener("change", function () {
      try { localStorage.setItem(ZONE_KEY, select.value); } catch (e) { /* private mode: this page only */ }
      applyZone();
    });
  })();
  // What the server sent for each live part: a refresh compares against it,
  // not against the text rewritten in another zone, so unchanged parts are
  // left alone.
  var served = {};
  document.querySelectorAll("[data-live][id]").forEach(function (el) { served[el.id] = el.innerHTML; });
  applyZone();

  // --- live refresh: refetch this page and swap its [data-live] parts ---
  var refreshTimer = null;
  function refresh() {
    refreshTimer = null;
    fetch(location.href, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== served[el.id]) {
            served[el.id] = fresh.innerHTML;
            el.innerHTML = fresh.innerHTML;
          }
        });
        applyZone();
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {});
  }
  function relevant(change) {
    var run = document.body.getAttribute("data-run");
    if (run && change.run && change.run !== run) return false;
    var dag = document.body.getAttribute("data-dag");
    if (dag && change.dag && change.dag !== dag) return false;
    return true;
  }
  if (window.EventSource && document.querySelector("[data-live]")) {
    var live = document.getElementById("live");
    var source = new EventSource("/api/v1/stream");
    source.onopen = function () { if (live) { live.textContent = "● live"; live.className = "live on"; } };
    source.onerror = function () { if (live) { live.textContent = "○ reconnecting"; live.className = "live"; } };
    source.addEventListener("changed", function (e) {
      var change;
      try { change = JSON.parse(e.data); } catch (err) { return; }
      if (relevant(change) && !refreshTimer) refreshTimer = setTimeout(refresh, 700);
    });
    // A page left for another (or kept in the back-forward cache) must not
    // keep its stream: a browser opens at most 6 connections to one host,
    // and streams left open stall the next page's loading.
    window.addEventListener("pagehide", function () { source.close(); });
    window.addEventListener("pageshow", function (e) { if (e.persisted) location.reload(); });
  }

  // --- actions ---
  // The session cookie (HttpOnly) authenticates; every change also carries
  // the session's CSRF token, read from its (script-readable) cookie.
  function csrf() {
    // `__Host-nightshift_csrf` when the console runs with --secure-cookies.
    var m = document.cookie.match(/(?:^|;\s*)(?:__Host-)?nightshift_csrf=([^;]+)/);
    return m ? m[1] : "";
  }
  function toLogin() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }
  function post(path, body, confirmText) {
    if (confirmText && !window.confirm(confirmText)) return;
    fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Nightshift-CSRF": csrf() },
      body: JSON.stringify(body || {})
    })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, json: j }; });
      })
      .then(function (res) {
        if (res.status === 401) { toLogin(); return; }
        if (res.status >= 400) {
          toast((res.json.error && res.json.error.message) || ("failed: HTTP " + res.status), true);
        } else if (res.json.command_id) {
          follow(res.json.command_id, res.json.kind);
        } else {
          toast("Done");
          refresh();
        }
      })
      .catch(function (err) { toast("request failed: " + err, true); });
  }
  // Follows a command to what the leader did with it: the toast says
  // "waiting" until then, never "done" before the leader has answered.
  var words = { trigger: "Trigger", cancel_run: "Cancel", retry: "Retry", skip_job: "Skip",
    mark_item_succeeded: "Mark succeeded", pause_dag: "Pause", resume_dag: "Resume" };
  function follow(id, kind) {
    var what = words[kind] || kind;
    var started = Date.now();
    toast(what + " sent; waiting for the scheduler…", false, null, "pending", 120000);
    function poll() {
      fetch("/api/v1/commands/" + encodeURIComponent(id) + "?kind=" + encodeURIComponent(kind),
        { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (c) {
          if (c && c.state === "rejected") {
            toast(what + " rejected by the scheduler: " + (c.reason || "no reason given"), true, null, "rejected", 30000);
            refresh();
          } else if (c && c.state === "applied") {
            var link = c.run_id ? { href: "/runs/" + encodeURIComponent(c.run_id), text: "run " + c.run_id } : null;
            var said = c.outcome ? " (" + c.outcome + ")" : "";
            toast(what + " applied" + said + (link ? ":" : ""), false, link, "applied", 30000);
            refresh();
          } else if (Date.now() - started > 60000) {
            toast(what + " not answered by the scheduler after a minute (command " + id +
              "); is a scheduler running?", true, null, "pending", 30000);
          } else {
            setTimeout(poll, 500);
          }
        })
        .catch(function () { setTimeout(poll, 1000); });
    }
    setTimeout(poll, 300);
  }
  var logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", function (e) {
      e.preventDefault();
      fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-Nightshift-CSRF": csrf() } })
        .then(function () { location.href = "/login"; });
    });
  }
  function formBody(form) {
    var body = {};
    var bad = null;
    form.querySelectorAll("[name]").forEach(function (el) {
      if (el.type === "checkbox") {
        if (el.checked) body[el.name] = true;
        return;
      }
      var v = el.value.trim();
      if (v === "") return;
      if (el.hasAttribute("data-json")) {
        try { body[el.name] = JSON.parse(v); } catch (e) { bad = el.name + " is not valid JSON"; }
      } else if (el.type === "number") {
        body[el.name] = Number(v);
      } else {
        body[el.name] = v;
      }
    });
    if (bad) { toast(bad, true); return null; }
    return body;
  }
  // The attempt log (text/plain from the API), always inserted as text.
  function showLog(panel, path, attempt) {
    var box = document.createElement("div");
    box.className = "log";
    box.textContent = "\nloading the log of attempt " + attempt + "…";
    panel.appendChild(box);
    fetch(path, { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { toLogin(); return null; }
        return r.text().then(function (t) { return { ok: r.ok, text: t }; });
      })
      .then(function (res) {
        if (!res) return;
        if (res.ok) {
          box.textContent = "\n— log of attempt " + attempt + " —\n" + res.text;
          return;
        }
        var message = "no log";
        try { message = JSON.parse(res.text).error.message; } catch (e) { /* not JSON */ }
        box.textContent = "\n" + message;
      })
      .catch(function (err) { box.textContent = "\nlog unavailable: " + err; });
  }
  document.addEventListener("click", function (e) {
    var btn = e.target.closest("button.act");
    if (btn && !btn.disabled) {
      e.preventDefault();
      post(btn.getAttribute("data-path"), {}, btn.getAttribute("data-confirm"));
      return;
    }
    var cell = e.target.closest(".cell");
    if (cell) {
      var panel = document.getElementById("item-detail");
      var grid = cell.closest(".grid");
      document.querySelectorAll(".cell.sel").forEach(function (c) { c.classList.remove("sel"); });
      cell.classList.add("sel");
      if (panel) {
        panel.hidden = false;
        panel.textContent = cell.getAttribute("title");
        var attempt = cell.getAttribute("data-attempt");
        if (grid && attempt) {
          showLog(panel, grid.getAttribute("data-mark-base") + cell.getAttribute("data-item") +
            "/attempts/" + attempt + "/log", attempt);
        }
        if (grid && grid.getAttribute("data-read-only") !== "true") {
          var b = document.createElement("button");
          b.textContent = "Mark item " + cell.getAttribute("data-item") + " succeeded";
          b.className = "act";
          b.setAttribute("data-path", grid.getAttribute("data-mark-base") + cell.getAttribute("data-item") + "/mark-succeeded");
          b.setAttribute("data-confirm", "Record item " + cell.getAttribute("data-item") + " as succeeded without running it?");
          var whyNot = grid.getAttribute("data-mark-why-not") ||
            (cell.classList.contains("st-succeeded") ? "the item already succeeded" : "");
          if (whyNot) {
            b.disabled = true;
            b.title = whyNot;
            b.setAttribute("data-why-not", whyNot);
          }
          panel.appendChild(document.createElement("br"));
          panel.appendChild(b);
        }
      }
    }
  });
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("form.act");
    if (!form) return;
    e.preventDefault();
    var body = formBody(form);
    if (body) post(form.getAttribute("data-path"), body, form.getAttribute("data-confirm"));
  });
})();
