// The console's overview: polls /console/overview.json and updates the banner and the
// figures in place; signs out with the session's CSRF token. Plain script, no framework.
"use strict";

(function () {
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  function apply(o) {
    var banner = document.getElementById("banner");
    if (banner) banner.className = "banner mode-" + o.mode;
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var v = o[el.getAttribute("data-field")];
      el.textContent = v === null || v === undefined ? "" : String(v);
    });
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  }

  function poll() {
    fetch("/console/overview.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/console/login"); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (o) { if (o) apply(o); })
      .catch(function () { document.getElementById("updated").textContent = "not reachable"; })
      .finally(function () { window.setTimeout(poll, 2500); });
  }

  document.getElementById("signout").addEventListener("click", function () {
    fetch("/console/logout", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf },
    }).finally(function () { window.location.assign("/console/login"); });
  });

  window.setTimeout(poll, 2500);
})();
