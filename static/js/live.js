// Live session view: resume-aware WebSocket URL, duplicate guard, polling fallback, auto-scroll
// that pauses when the reader scrolls up ("Jump to latest"), and "copy link to a line".
// No inline scripts (strict CSP); htmx + its ws extension do the swapping.
(function () {
  "use strict";

  // ---- copy link to a line (transcript archive and live view) ----------------------------
  document.addEventListener("click", function (evt) {
    var link = evt.target.closest && evt.target.closest("a[data-copy-link]");
    if (!link || evt.ctrlKey || evt.metaKey || evt.shiftKey || !navigator.clipboard) return;
    evt.preventDefault();
    var url = new URL(link.getAttribute("href"), location.href).toString();
    navigator.clipboard.writeText(url).then(function () {
      if (window.glyphoxaToast) window.glyphoxaToast("Link to this line copied.");
    }, function () { location.href = url; });
  });

  // Bring a linked line into view (the archive marks it .is-target).
  var target = document.querySelector(".transcript .is-target");
  if (target && target.scrollIntoView) target.scrollIntoView({ block: "center" });

  var root = document.getElementById("live");
  if (!root) return;
  var list = document.getElementById("transcript");
  var scroller = document.getElementById("transcript-scroll");
  var jump = document.getElementById("jump-latest");
  var conn = document.getElementById("live-conn");
  var unseen = 0;
  var stick = true; // follow new lines while the reader is at the bottom
  var failures = 0;
  var opened = false;
  var polling = false;

  // The resume cursor is the highest line id on the page (an arrival mark): lines are shown in
  // time order, so a line that arrived late with an earlier timestamp isn't the last one shown.
  function lastId() {
    var top = parseInt(root.getAttribute("data-after") || "0", 10) || 0;
    list.querySelectorAll("[data-line-id]").forEach(function (li) {
      top = Math.max(top, parseInt(li.getAttribute("data-line-id"), 10) || 0);
    });
    return String(top);
  }

  // Transcript order is (timestamp, id): move a line that arrived late into its place.
  function key(li) {
    return [Number(li.getAttribute("data-at")) || 0, Number(li.getAttribute("data-line-id")) || 0];
  }
  function before(a, b) { return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]); }
  function place(li) {
    var k = key(li);
    var prev = li.previousElementSibling;
    var spot = null;
    while (prev && prev.hasAttribute("data-line-id") && before(k, key(prev))) {
      spot = prev;
      prev = prev.previousElementSibling;
    }
    if (spot) list.insertBefore(li, spot);
  }

  function status(text) { if (conn) conn.textContent = text; }

  function atBottom() { return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48; }

  function toBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    unseen = 0;
    if (jump) jump.hidden = true;
  }

  scroller.addEventListener("scroll", function () {
    stick = atBottom();
    if (stick) { unseen = 0; if (jump) jump.hidden = true; }
  }, { passive: true });
  if (jump) jump.addEventListener("click", function () { stick = true; toBottom(); scroller.focus(); });
  toBottom();

  // Every (re)connect asks for the lines that arrived after those on the page: no gaps, no duplicates.
  if (window.htmx) {
    htmx.createWebSocket = function (url) {
      var u = new URL(url, location.href);
      u.searchParams.set("after", lastId());
      var socket = new WebSocket(u.toString());
      socket.binaryType = htmx.config.wsBinaryType || "blob";
      return socket;
    };
  }

  // Belt and braces: never insert a line that is already on the page.
  var pending = 0;
  var arrived = [];
  document.body.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var d = evt.detail;
    if (!d || !d.target || d.target.id !== "transcript" || !d.fragment) return;
    d.fragment.querySelectorAll("[data-line-id]").forEach(function (li) {
      if (document.getElementById(li.id)) li.remove();
      else arrived.push(li.id);
    });
    pending += d.fragment.querySelectorAll("[data-line-id]").length;
    var empty = document.getElementById("transcript-empty");
    if (empty && pending) empty.remove();
  });
  document.body.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (!evt.detail || !evt.detail.target || evt.detail.target.id !== "transcript") return;
    arrived.forEach(function (id) { var li = document.getElementById(id); if (li) place(li); });
    arrived = [];
    if (!pending) return;
    var added = pending;
    pending = 0;
    if (stick) { toBottom(); return; }
    unseen += added;
    if (jump) {
      jump.hidden = false;
      jump.textContent = "Jump to latest (" + unseen + " new)";
    }
  });

  // ---- WebSocket health and the polling fallback ------------------------------------------
  root.addEventListener("htmx:wsOpen", function () {
    opened = true; failures = 0; status("Live.");
  });
  root.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    if (code === 1000) { status(""); return; } // the session ended: the server said goodbye
    if (code === 1008) { location.reload(); return; } // signed out elsewhere: the page sends us to sign-in
    if (!opened) failures += 1;
    opened = false;
    if (failures >= 3) startPolling();
    else status("Reconnecting…");
  });

  function startPolling() {
    if (polling) return;
    polling = true;
    var socketElt = document.getElementById("live-socket");
    if (socketElt) socketElt.remove(); // stops the ws extension's reconnect loop
    var poller = document.getElementById("live-poll");
    if (!poller || !window.htmx) return;
    var seconds = poller.getAttribute("data-poll-seconds") || "3";
    poller.setAttribute("hx-get", poller.getAttribute("data-poll-url"));
    poller.setAttribute("hx-trigger", "every " + seconds + "s");
    poller.setAttribute("hx-swap", "none");
    htmx.process(poller);
    status("Live updates every " + seconds + " seconds.");
  }

  // The poller asks for the lines after the last one on the page.
  document.body.addEventListener("htmx:configRequest", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "live-poll") evt.detail.parameters.after = lastId();
  });

  if (!("WebSocket" in window)) startPolling();
})();
