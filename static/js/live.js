// Live session view: resume-aware WebSocket URL, duplicate guard, polling fallback, auto-scroll
// that pauses when the reader scrolls up ("Jump to latest"), and "copy link to a line".
// No inline scripts (strict CSP); htmx + its ws extension do the swapping.
(function () {
  "use strict";

  // The page's language (window.glyphoxa.t, app.js); English, filled in, if that isn't there.
  function t(message, vars) {
    if (window.glyphoxa && window.glyphoxa.t) return window.glyphoxa.t(message, vars);
    return message.replace(/%\((\w+)\)[sd]/g, function (all, name) {
      return vars && Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : all;
    });
  }

  // ---- copy link to a line (transcript archive and live view) ----------------------------
  document.addEventListener("click", function (evt) {
    var link = evt.target.closest && evt.target.closest("a[data-copy-link]");
    if (!link || evt.ctrlKey || evt.metaKey || evt.shiftKey || !navigator.clipboard) return;
    evt.preventDefault();
    var url = new URL(link.getAttribute("href"), location.href).toString();
    navigator.clipboard.writeText(url).then(function () {
      window.glyphoxa.toast(t("Link to this line copied."), "success", "copy");
    }, function () { location.href = url; });
  });

  // Bring a linked line into view (the archive marks it .is-target).
  var target = document.querySelector(".transcript .is-target");
  if (target && target.scrollIntoView) target.scrollIntoView({ block: "center" });

  // ---- find within one transcript (the archive page) ---------------------------------------
  // Highlights every match on the page's lines and jumps between them (Enter / Shift+Enter, or
  // the arrow buttons). Without JavaScript the bar stays hidden: the browser's own find and the
  // cross-session search page remain.
  (function findInTranscript() {
    var bar = document.getElementById("find-bar");
    var input = document.getElementById("tx-find");
    if (!bar || !input) return;
    var count = document.getElementById("tx-find-count");
    var allLink = document.getElementById("tx-find-all");
    var hits = [];
    var current = -1;
    bar.hidden = false;

    function clear() {
      document.querySelectorAll("mark.find-hit").forEach(function (m) {
        var parent = m.parentNode;
        parent.replaceChild(document.createTextNode(m.textContent), m);
        parent.normalize();
      });
      hits = []; current = -1;
    }

    function highlight(term) {
      clear();
      if (!term) { count.textContent = ""; return; }
      var needle = term.toLowerCase();
      document.querySelectorAll(".transcript-archive .line-text, .transcript-archive .speaker").forEach(function (el) {
        var walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        var nodes = [];
        while (walker.nextNode()) nodes.push(walker.currentNode);
        nodes.forEach(function (node) {
          var text = node.nodeValue, lower = text.toLowerCase(), at = lower.indexOf(needle);
          if (at < 0) return;
          var frag = document.createDocumentFragment(), from = 0;
          while (at >= 0) {
            frag.appendChild(document.createTextNode(text.slice(from, at)));
            var mark = document.createElement("mark");
            mark.className = "find-hit";
            mark.textContent = text.slice(at, at + needle.length);
            frag.appendChild(mark);
            hits.push(mark);
            from = at + needle.length;
            at = lower.indexOf(needle, from);
          }
          frag.appendChild(document.createTextNode(text.slice(from)));
          node.parentNode.replaceChild(frag, node);
        });
      });
      if (allLink) allLink.href = allLink.href.split("?")[0] + "?q=" + encodeURIComponent(term);
      go(hits.length ? 0 : -1);
    }

    function go(index) {
      if (current >= 0 && hits[current]) hits[current].classList.remove("is-current");
      if (!hits.length) { current = -1; count.textContent = input.value ? t("No matches on this page") : ""; return; }
      current = (index + hits.length) % hits.length;
      hits[current].classList.add("is-current");
      hits[current].scrollIntoView({ block: "center" });
      count.textContent = t("%(current)s of %(total)s on this page", { current: current + 1, total: hits.length });
    }

    var pendingFind = null;
    input.addEventListener("input", function () {
      clearTimeout(pendingFind);
      pendingFind = setTimeout(function () { highlight(input.value.trim()); }, 150);
    });
    input.addEventListener("keydown", function (evt) {
      if (evt.key !== "Enter") return;
      evt.preventDefault(); // finding never submits anything
      if (!hits.length) { highlight(input.value.trim()); return; }
      go(current + (evt.shiftKey ? -1 : 1));
    });
    document.getElementById("tx-find-next").addEventListener("click", function () { go(current + 1); });
    document.getElementById("tx-find-prev").addEventListener("click", function () { go(current - 1); });
    // New lines swapped in (filters, earlier/later pages): find again in them.
    document.body.addEventListener("htmx:afterSwap", function (evt) {
      if (evt.detail && evt.detail.target && evt.detail.target.id === "lines" && input.value.trim()) {
        highlight(input.value.trim());
      }
    });
  })();

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
      jump.textContent = t("Jump to latest (%(n)s new)", { n: unseen });
    }
  });

  // ---- the running timer -------------------------------------------------------------------
  var timerEl = document.getElementById("live-timer");
  var startedAt = timerEl ? Date.parse(timerEl.getAttribute("data-started")) : NaN;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var el = document.getElementById("live-timer");
    if (!el || isNaN(startedAt)) return false;
    var s = Math.max(0, Math.floor((Date.now() - startedAt) / 1000));
    el.textContent = Math.floor(s / 3600) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
    return true;
  }
  if (tick()) {
    var ticking = setInterval(function () { if (!tick()) clearInterval(ticking); }, 1000);
  }

  // ---- WebSocket health, back-off and the polling fallback ---------------------------------
  // Abnormal closes reconnect after 1 s, 2 s, 4 s … (capped at 30 s), each with jitter so that a
  // restarted server isn't hit by every tab at once. The count only resets once a socket has
  // stayed up for a while: a server that accepts and drops at once must not cause a storm.
  var drops = 0;
  var stableTimer = null;
  var ended = false;
  var MAX_DELAY = 30000, STABLE_MS = 15000;
  if (window.htmx) {
    htmx.config.wsReconnectDelay = function () {
      var base = Math.min(MAX_DELAY, 1000 * Math.pow(2, Math.max(0, drops - 1)));
      return base / 2 + Math.random() * base / 2;
    };
  }

  function sessionOver() {
    // The session ended: no socket, no polling, ever again on this page.
    ended = true;
    var socketElt = document.getElementById("live-socket");
    if (socketElt) socketElt.remove(); // the ws extension closes it and never reconnects
    var poller = document.getElementById("live-poll");
    if (poller) poller.remove();
    if (stableTimer) clearTimeout(stableTimer);
    status(t("Session ended."));
  }

  root.addEventListener("htmx:wsOpen", function () {
    opened = true; failures = 0; status(t("Live."));
    if (stableTimer) clearTimeout(stableTimer);
    stableTimer = setTimeout(function () { drops = 0; }, STABLE_MS);
  });
  root.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    if (stableTimer) { clearTimeout(stableTimer); stableTimer = null; }
    if (ended || code === 1000) { sessionOver(); return; } // the session ended: the server said goodbye
    if (code === 1008) { location.reload(); return; } // signed out elsewhere: the page sends us to sign-in
    drops += 1;
    if (!opened) failures += 1;
    opened = false;
    if (failures >= 3) startPolling();
    else status(t("Reconnecting…"));
  });
  // The final fragment (WebSocket or polling) marks the end before the socket closes.
  document.body.addEventListener("htmx:oobAfterSwap", function (evt) {
    var t = evt.detail && evt.detail.target;
    if (t && t.id === "live-ended" && t.textContent.trim()) sessionOver();
  });

  function startPolling() {
    if (polling || ended) return;
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
    status(t("Live updates every %(n)s seconds.", { n: seconds }));
  }

  // The poller asks for the lines after the last one on the page.
  document.body.addEventListener("htmx:configRequest", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "live-poll") evt.detail.parameters.after = lastId();
  });

  if (!("WebSocket" in window)) startPolling();
})();
