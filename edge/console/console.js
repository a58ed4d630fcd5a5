// The console's one script: keeps a page's live figures current, sends its forms to the
// JSON API with the session's CSRF token, and signs out. Plain script, no framework; the
// pages work as plain reads without it.
"use strict";

(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  // Live figures: an element with data-poll names a JSON URL; each [data-field] inside the
  // page takes that field's value, and the banner its mode's class.
  var live = document.querySelector("[data-poll]");
  function apply(o) {
    var banner = document.getElementById("banner");
    if (banner && o.mode) banner.className = "banner mode-" + o.mode;
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var v = o[el.getAttribute("data-field")];
      if (v !== undefined) el.textContent = v === null ? "" : String(v);
    });
    var updated = document.getElementById("updated");
    if (updated) updated.textContent = new Date().toLocaleTimeString();
  }
  function poll() {
    fetch(live.getAttribute("data-poll"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/console/login"); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (o) { if (o) apply(o); })
      .catch(function () {
        var updated = document.getElementById("updated");
        if (updated) updated.textContent = updated.getAttribute("data-unreachable") || "—";
      })
      .finally(function () { window.setTimeout(poll, 2500); });
  }
  if (live) window.setTimeout(poll, 2500);

  // Forms with class "api" post their fields as JSON to data-api (method data-method),
  // with the CSRF token. Success: go to data-next, or reload. Failure: the API's message in
  // the form's [role=alert] element.
  // A data-api with {name} in it takes that field's value there (URL-encoded) instead of in
  // the body. data-show-result="key": on success, show the answer's `key` in the form's
  // [data-result-value] (inside [data-result], unhidden) instead of reloading: a secret
  // shown once stays on screen until the person moves on.
  function send(form) {
    var body = {};
    var url = form.getAttribute("data-api");
    new FormData(form).forEach(function (value, key) {
      var slot = "{" + key + "}";
      if (url.indexOf(slot) >= 0) {
        url = url.split(slot).join(encodeURIComponent(value));
        return;
      }
      var input = form.elements[key];
      if (input && input.type === "number") {
        body[key] = value === "" ? null : Number(value);
      } else if (input && input.type === "checkbox") {
        body[key] = true;
      } else {
        body[key] = value;
      }
    });
    var alert = form.querySelector("[role=alert]");
    if (alert) alert.textContent = "";
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    var result = form.querySelector("[data-result]");
    if (result) result.hidden = true;
    fetch(url, {
      method: form.getAttribute("data-method") || "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/console/login"); return; }
        var show = form.getAttribute("data-show-result");
        if (r.ok && show) {
          return r.json().then(function (o) {
            var value = result && result.querySelector("[data-result-value]");
            if (value) value.textContent = o && o[show] !== undefined ? String(o[show]) : "";
            if (result) result.hidden = false;
            form.reset();
          });
        }
        if (r.ok) {
          var next = form.getAttribute("data-next");
          if (next) window.location.assign(next); else window.location.reload();
          return;
        }
        return r.json().catch(function () { return {}; }).then(function (e) {
          var text = (e && e.message) || ("HTTP " + r.status);
          if (alert) alert.textContent = text; else window.alert(text);
        });
      })
      .catch(function (e) {
        if (alert) alert.textContent = String(e); else window.alert(String(e));
      })
      .finally(function () { buttons.forEach(function (b) { b.disabled = false; }); });
  }
  document.querySelectorAll("form.api").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var ask = form.getAttribute("data-confirm");
      if (ask && !window.confirm(ask)) return;
      send(form);
    });
    form.querySelectorAll("[data-submit-on-change]").forEach(function (el) {
      el.addEventListener("change", function () { send(form); });
    });
  });

  var signout = document.getElementById("signout");
  if (signout) {
    signout.addEventListener("click", function () {
      fetch("/console/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf },
      }).finally(function () { window.location.assign("/console/login"); });
    });
  }
})();
