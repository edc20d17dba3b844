// tether admin: live refresh and two-step confirmation. Plain JS, no
// build step; the CSP allows only this file, so nothing here is inline.
(function () {
  "use strict";
  var KEY = "tether.live";
  var body = document.body;
  var period = parseInt(body.getAttribute("data-refresh-ms"), 10) || 2000;
  var toggle = document.getElementById("live-toggle");
  var state = document.getElementById("live-state");
  var timer = null;
  var inflight = false;

  function say(text, bad) {
    if (!state) return;
    state.textContent = text;
    state.className = "live-state" + (bad ? " err" : "");
  }

  // busy: the operator is typing, choosing or confirming: do not swap
  // the content under their hands.
  function busy() {
    var a = document.activeElement;
    var content = document.getElementById("content");
    if (a && content && content.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return true;
    return document.querySelector("button.armed") !== null;
  }

  function refresh() {
    if (inflight || document.hidden || busy()) return;
    inflight = true;
    fetch(location.href, { headers: { "X-Tether-Partial": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected || r.status === 401) { location.reload(); return null; }
        return r.text().then(function (t) { return { ok: r.ok || r.status === 400, text: t, status: r.status }; });
      })
      .then(function (res) {
        if (!res) return;
        if (!res.ok) { say("error " + res.status, true); return; }
        var content = document.getElementById("content");
        if (content && !busy()) {
          content.innerHTML = res.text;
          say("updated " + new Date().toLocaleTimeString());
        }
      })
      .catch(function () { say("offline", true); })
      .then(function () { inflight = false; });
  }

  function setLive(on) {
    if (timer) { clearInterval(timer); timer = null; }
    if (on) { timer = setInterval(refresh, period); say("live"); } else { say(""); }
    try { localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* private mode */ }
  }

  // A flash message comes as ?done=...; drop it from the address so a
  // reload or a live refresh does not show it again.
  if (/[?&]done=/.test(location.search) && history.replaceState) {
    var q = new URLSearchParams(location.search);
    q.delete("done"); q.delete("subject");
    var qs = q.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : "") + location.hash);
  }

  if (toggle) {
    var saved = null;
    try { saved = localStorage.getItem(KEY); } catch (e) { /* private mode */ }
    toggle.checked = saved === "1";
    setLive(toggle.checked);
    toggle.addEventListener("change", function () { setLive(toggle.checked); });
  }

  // Two-step confirmation: the first click arms the button ("delete?"),
  // a second click within 4 s submits. No native dialog, so a browser test
  // just clicks twice. Delegated, so it survives content swaps.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-confirm]") : null;
    if (b) {
      if (!b.classList.contains("armed")) {
        ev.preventDefault();
        b.classList.add("armed");
        b.setAttribute("data-label", b.textContent);
        b.textContent = b.getAttribute("data-confirm");
        setTimeout(function () {
          if (b.classList.contains("armed")) { b.classList.remove("armed"); b.textContent = b.getAttribute("data-label"); }
        }, 4000);
      }
      return;
    }
    var back = ev.target.closest ? ev.target.closest("a[data-back]") : null;
    if (back && history.length > 1) { ev.preventDefault(); history.back(); }
  });
})();
