// Glyphoxa Web: the small amount of glue htmx needs. No inline scripts (strict CSP).
(function () {
  "use strict";
  var region = function () { return document.getElementById("toasts"); };

  function showToast(message, level) {
    var host = region();
    if (!host || !message) return;
    var el = document.createElement("div");
    el.className = "toast" + (level === "error" ? " toast-error" : "");
    el.setAttribute("role", level === "error" ? "alert" : "status");
    var text = document.createElement("span");
    text.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () { el.remove(); });
    el.appendChild(text);
    el.appendChild(close);
    host.appendChild(el);
    setTimeout(function () { el.remove(); }, level === "error" ? 8000 : 5000);
  }
  window.glyphoxaToast = showToast;

  // Server-sent toasts: HX-Trigger: {"toast": {"message": "...", "level": "..."}} (or {"messages": [...]})
  document.body.addEventListener("toast", function (evt) {
    var d = evt.detail || {};
    if (d.messages) { d.messages.forEach(function (m) { showToast(m.message, m.level); }); }
    else { showToast(d.message || d.value, d.level); }
  });

  // Errors without a server toast still tell the user something.
  document.body.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr && xhr.getResponseHeader("HX-Trigger")) return;
    showToast(xhr && xhr.status >= 500 ? "Something went wrong on our side. Try again in a moment."
                                       : "That didn't work. Reload the page and try again.", "error");
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
      showToast("That didn't work. Check what you entered and try again.", "error");
    }
  });
  document.body.addEventListener("htmx:sendError", function () {
    showToast("Can't reach Glyphoxa. Check your connection.", "error");
  });

  // Mobile navigation: close the menu after choosing a link.
  document.addEventListener("click", function (evt) {
    var link = evt.target.closest && evt.target.closest(".sidenav a");
    if (link && location.hash === "#nav") { history.replaceState(null, "", location.pathname + location.search); }
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
