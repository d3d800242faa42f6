// Nightshift console script: live refresh over server-sent events, actions
// through the JSON API, and the item detail panel. Plain browser JavaScript,
// no build step, nothing loaded from elsewhere.
"use strict";
(function () {
  function toast(text, bad) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = text;
    t.className = "show" + (bad ? " bad" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.className = ""; }, 6000);
  }

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
          if (fresh && fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
        });
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
          toast("Sent " + res.json.kind + " (command " + res.json.command_id + ")" +
            (res.json.run_id ? ": run " + res.json.run_id : ""));
        } else {
          toast("Done");
          refresh();
        }
      })
      .catch(function (err) { toast("request failed: " + err, true); });
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
