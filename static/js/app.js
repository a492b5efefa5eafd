// Glyphoxa Web: the glue htmx needs, and the shell's Alpine islands (CSP build: components are
// registered here with Alpine.data; templates only name them and their properties/methods).
(function () {
  "use strict";

  // ---- toasts ---------------------------------------------------------------------------------
  // One way in: a `toast` event on window, with {message, level[, kind]} or {messages: [...]}.
  // Server toasts arrive as HX-Trigger: {"toast": ...}; scripts dispatch the same event.
  // A toast expires; a new toast replaces an older one of the same kind (default: its level).
  var TTL = { error: 8000, success: 5000 };
  var nextId = 1;

  function toastItems(detail) {
    var d = detail || {};
    var list = d.messages || [d];
    return list.filter(function (m) { return m && (m.message || m.value); }).map(function (m) {
      var level = m.level === "error" ? "error" : "success";
      return { id: nextId++, message: String(m.message || m.value), level: level, kind: m.kind || level };
    });
  }

  function toast(message, level, kind) {
    window.dispatchEvent(new CustomEvent("toast", { detail: { message: message, level: level, kind: kind } }));
  }
  // ---- translations for scripts ------------------------------------------------------------------
  // The page carries the current language's strings for scripts in <body data-js-messages>
  // (core/js_messages.py lists them; a data attribute, since the CSP allows no inline scripts);
  // t("Jump to latest (%(n)s new)", {n: 3}) translates and fills in.
  var catalog = null;
  function t(message, vars) {
    if (catalog === null) {
      var raw = document.body ? document.body.getAttribute("data-js-messages") : null;
      try { catalog = raw ? JSON.parse(raw) : {}; } catch (e) { catalog = {}; }
    }
    var text = Object.prototype.hasOwnProperty.call(catalog, message) ? catalog[message] : message;
    return text.replace(/%\((\w+)\)[sd]/g, function (all, name) {
      return vars && Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : all;
    });
  }
  window.glyphoxa = { toast: toast, t: t };

  function registerShell(Alpine) {
    Alpine.data("toasts", function () {
      return {
        items: [],
        receive: function (evt) {
          var fresh = toastItems(evt.detail);
          if (!fresh.length) return;
          var kinds = fresh.map(function (t) { return t.kind; });
          this.items = this.items.filter(function (t) { return kinds.indexOf(t.kind) === -1; }).concat(fresh);
          var self = this;
          fresh.forEach(function (t) {
            setTimeout(function () { self.drop(t.id); }, TTL[t.level] || TTL.success);
          });
        },
        drop: function (id) { this.items = this.items.filter(function (t) { return t.id !== id; }); },
        dismiss: function () { this.drop(this.item.id); },
        // per item (x-for scope)
        get itemClass() { return this.item.level === "error" ? "toast toast-error" : "toast"; },
        get itemRole() { return this.item.level === "error" ? "alert" : "status"; }
      };
    });

    // Phone navigation: without JS the toggle is a link to #nav (CSS :target); with JS it opens
    // and closes in place, and Escape closes it.
    Alpine.data("nav", function () {
      return {
        navOpen: false,
        toggleNav: function () { this.navOpen = !this.navOpen; },
        closeNav: function () { this.navOpen = false; },
        get navClass() { return this.navOpen ? "open" : ""; },
        get navExpanded() { return this.navOpen ? "true" : "false"; }
      };
    });
  }

  document.addEventListener("alpine:init", function () { registerShell(window.Alpine); });

  // Errors without a server toast still tell the user something.
  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr && xhr.getResponseHeader("HX-Trigger")) return;
    toast(xhr && xhr.status >= 500 ? t("Something went wrong on our side. Try again in a moment.")
                                   : t("That didn't work. Reload the page and try again."), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast(t("Can't reach Glyphoxa. Check your connection."), "error");
  });
  // A 4xx that was swapped in (422: the form again, with its errors) is shown where the user is
  // looking: focus the first invalid field, or bring the first error message into view; and if
  // the swapped content carries no message at all and no toast came with it, say something.
  document.body.addEventListener("htmx:afterSwap", function (evt) {
    var xhr = evt.detail && evt.detail.xhr;
    if (!xhr || xhr.status < 400 || xhr.status >= 500) return;
    var scope = evt.detail.target && evt.detail.target.isConnected ? evt.detail.target : document;
    var field = scope.querySelector("[aria-invalid=true]") || document.querySelector("[aria-invalid=true]");
    var message = scope.querySelector(".error, [role=alert], .notice-error") ||
                  document.querySelector("main .error, main [role=alert]");
    if (field && field.focus) { field.focus(); }
    if (message && message.scrollIntoView) { message.scrollIntoView({ block: "nearest" }); }
    if (!field && !message && !xhr.getResponseHeader("HX-Trigger")) {
      toast(t("That didn't work. Check what you entered and try again."), "error");
    }
  });

  // Auto-refresh only while the tab is visible: an element marked data-refresh-when-visible
  // (hx-trigger="every 15s, refresh") skips its polls while the tab is hidden and refreshes at
  // once when the tab comes back. (A trigger filter would need eval, which the CSP forbids.)
  document.body.addEventListener("htmx:confirm", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (document.hidden && elt && elt.hasAttribute && elt.hasAttribute("data-refresh-when-visible")) {
      evt.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-refresh-when-visible]").forEach(function (el) { htmx.trigger(el, "refresh"); });
  });

  // Confirmation by typing a name: <form data-confirm-name="Exact Name"> enables its submit
  // button only when the input[name=confirm_name] matches.
  document.addEventListener("input", function (evt) {
    var form = evt.target.form;
    if (!form || !form.dataset.confirmName || evt.target.name !== "confirm_name") return;
    var ok = evt.target.value.trim() === form.dataset.confirmName;
    form.querySelectorAll("[type=submit]").forEach(function (b) { b.disabled = !ok; });
  });
})();
