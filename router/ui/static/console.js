// incident-router console: refreshes the [data-live] regions of a page (the alert list, the
// incident list, an incident's status and timeline) without reloading it. No inline script:
// the Content-Security-Policy allows only this file.
"use strict";
(function () {
  var EVERY_MS = 3000;

  function live(el) {
    var url = el.getAttribute("data-live");
    var busy = false;
    function tick() {
      // Not while hidden, nor while the keyboard is inside it (a swap would lose the focus).
      if (busy || document.hidden || el.contains(document.activeElement)) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (!r.ok || r.redirected) { throw new Error("HTTP " + r.status); }
          return r.text();
        })
        .then(function (html) {
          el.innerHTML = html;
          el.removeAttribute("data-stale");
        })
        .catch(function () { el.setAttribute("data-stale", "true"); })
        .then(function () { busy = false; });
    }
    window.setInterval(tick, Number(el.getAttribute("data-every")) || EVERY_MS);
  }

  document.querySelectorAll("[data-live]").forEach(live);
})();
