// Campaign and NPC editors: progressive enhancement only. Every form works without this file
// (lists are one item per line in a textarea, attributes are key/value inputs, ordering has
// move up/down buttons). No inline scripts: the CSP is script-src 'self'.
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function button(label, aria, cls) {
    var b = el("button", { type: "button", class: "btn btn-small icon-btn " + (cls || ""), "aria-label": aria }, label);
    return b;
  }

  // ---- list editor: a textarea (one item per line) becomes an editable list -----------------
  function listEditor(textarea) {
    if (textarea.dataset.enhanced) return;
    textarea.dataset.enhanced = "1";
    var label = textarea.dataset.itemLabel || "item";
    var box = el("div", { class: "list-editor" });
    var list = el("ul", { role: "list" });
    var adder = el("div", { class: "row list-add" });
    var newInput = el("input", { type: "text", id: textarea.id + "-new", placeholder: "Add " + label + "…", class: "grow", autocomplete: "off" });
    var addBtn = el("button", { type: "button", class: "btn btn-small" }, "Add");
    if (textarea.getAttribute("aria-invalid")) {
      newInput.setAttribute("aria-invalid", "true");
      newInput.setAttribute("aria-describedby", textarea.getAttribute("aria-describedby") || "");
    }
    adder.appendChild(newInput);
    adder.appendChild(addBtn);
    box.appendChild(list);
    box.appendChild(adder);

    function items() {
      return Array.prototype.map.call(list.querySelectorAll("input"), function (i) { return i.value.trim(); })
        .filter(function (v) { return v; });
    }
    function sync() { textarea.value = items().join("\n"); }
    function relabel() {
      Array.prototype.forEach.call(list.children, function (li, idx) {
        li.querySelector("input").setAttribute("aria-label", label + " " + (idx + 1));
        li.querySelector("[data-up]").disabled = idx === 0;
        li.querySelector("[data-down]").disabled = idx === list.children.length - 1;
      });
    }
    function row(value) {
      var li = el("li", { class: "row list-item" });
      var input = el("input", { type: "text", class: "grow", autocomplete: "off" });
      input.value = value;
      var up = button("↑", "Move up", ""); up.dataset.up = "1";
      var down = button("↓", "Move down", ""); down.dataset.down = "1";
      var remove = button("×", "Remove", "btn-danger");
      input.addEventListener("input", sync);
      up.addEventListener("click", function () {
        if (li.previousElementSibling) { list.insertBefore(li, li.previousElementSibling); after(up); }
      });
      down.addEventListener("click", function () {
        if (li.nextElementSibling) { list.insertBefore(li.nextElementSibling, li); after(down); }
      });
      remove.addEventListener("click", function () {
        var next = li.nextElementSibling || li.previousElementSibling;
        li.remove(); sync(); relabel();
        (next ? next.querySelector("input") : newInput).focus();
      });
      li.appendChild(input); li.appendChild(up); li.appendChild(down); li.appendChild(remove);
      return li;
    }
    function after(focusBtn) {
      sync(); relabel();
      if (focusBtn.disabled) { focusBtn.closest("li").querySelector("input").focus(); } else { focusBtn.focus(); }
    }
    function add() {
      var value = newInput.value.trim();
      if (!value) return;
      value.split(/\n+/).forEach(function (v) { if (v.trim()) list.appendChild(row(v.trim())); });
      newInput.value = "";
      sync(); relabel(); newInput.focus();
    }
    addBtn.addEventListener("click", add);
    newInput.addEventListener("keydown", function (evt) {
      if (evt.key === "Enter") { evt.preventDefault(); add(); }
    });
    textarea.value.split("\n").forEach(function (v) { if (v.trim()) list.appendChild(row(v.trim())); });
    relabel();
    textarea.hidden = true;
    textarea.parentNode.insertBefore(box, textarea.nextSibling);
    var lbl = document.querySelector('label[for="' + textarea.id + '"]');
    if (lbl) lbl.setAttribute("for", newInput.id);
    var form = textarea.form;
    if (form) form.addEventListener("submit", function () { newInput.value && add(); sync(); });
  }

  // ---- key/value editor ------------------------------------------------------------------------
  function kvEditor(box) {
    if (box.dataset.enhanced) return;
    box.dataset.enhanced = "1";
    var n = box.querySelectorAll(".kv-row").length;
    function addRemove(row) {
      var remove = button("×", "Remove attribute", "btn-danger");
      remove.addEventListener("click", function () {
        var rows = box.querySelectorAll(".kv-row");
        if (rows.length > 1) { row.remove(); } else { row.querySelectorAll("input").forEach(function (i) { i.value = ""; }); }
        addBtn.focus();
      });
      row.appendChild(remove);
    }
    var addBtn = el("button", { type: "button", class: "btn btn-small" }, "Add attribute");
    addBtn.addEventListener("click", function () {
      var template = box.querySelector(".kv-row");
      var row = template.cloneNode(true);
      n += 1;
      row.setAttribute("aria-label", "Attribute " + n);
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; input.id = input.id.replace(/\d+$/, n); });
      row.querySelectorAll("label").forEach(function (l) { l.setAttribute("for", l.getAttribute("for").replace(/\d+$/, n)); });
      row.querySelectorAll("button").forEach(function (b) { b.remove(); });
      row.querySelectorAll(".kv-type").forEach(function (t) { t.remove(); }); // a new value is text
      addRemove(row);
      box.insertBefore(row, addBtn);
      row.querySelector("input").focus();
    });
    box.querySelectorAll(".kv-row").forEach(addRemove);
    box.appendChild(addBtn);
  }

  // ---- character counters ---------------------------------------------------------------------
  function counter(textarea) {
    if (textarea.dataset.enhanced) return;
    textarea.dataset.enhanced = "1";
    var max = parseInt(textarea.getAttribute("maxlength") || "0", 10);
    var out = el("p", { class: "counter small muted", id: textarea.id + "-count" });
    function update() {
      var len = textarea.value.length;
      out.textContent = len.toLocaleString() + (max ? " / " + max.toLocaleString() : "") + " characters";
      out.classList.toggle("near-limit", max && len > max * 0.9);
    }
    textarea.addEventListener("input", update);
    textarea.parentNode.insertBefore(out, textarea.nextSibling);
    update();
  }

  // ---- drag-and-drop ordering (SortableJS) ----------------------------------------------------
  function sortable(list) {
    if (list.dataset.enhanced || typeof window.Sortable === "undefined") return;
    list.dataset.enhanced = "1";
    window.Sortable.create(list, {
      handle: ".drag-handle",
      animation: 150,
      ghostClass: "is-ghost",
      onEnd: function (evt) {
        if (evt.oldIndex === evt.newIndex) return;
        var ids = Array.prototype.map.call(list.querySelectorAll(":scope > li[data-id]"), function (li) { return li.dataset.id; });
        window.htmx.ajax("POST", list.dataset.orderUrl, {
          source: list, target: "#cast", swap: "innerHTML",
          values: { ids: ids.join(","), q: list.dataset.q || "", page: list.dataset.page || "1" }
        });
      }
    });
  }

  function init(root) {
    var scope = root && root.querySelectorAll ? root : document;
    scope.querySelectorAll("textarea[data-list-editor]").forEach(listEditor);
    scope.querySelectorAll("[data-kv-editor]").forEach(kvEditor);
    scope.querySelectorAll("textarea[data-counter]").forEach(counter);
    scope.querySelectorAll("[data-sortable]").forEach(sortable);
    if (scope.matches && scope.matches("[data-sortable]")) sortable(scope);
  }

  // ---- voice picker: choosing a voice fills the voice id -----------------------------------------
  document.addEventListener("click", function (evt) {
    var option = evt.target.closest && evt.target.closest(".voice-option");
    if (!option) return;
    var input = document.getElementById("voice_id");
    if (input) {
      input.value = option.dataset.voiceId;
      var provider = document.getElementById("voice_provider");
      if (provider && option.dataset.provider && provider.querySelector('option[value="' + option.dataset.provider + '"]')) {
        provider.value = option.dataset.provider;
      }
      var picker = option.closest("details");
      if (picker) picker.open = false;
      input.focus();
      if (window.glyphoxaToast) window.glyphoxaToast("Voice set to " + option.querySelector("strong").textContent + ". Save to keep it.");
    } else if (navigator.clipboard) {
      navigator.clipboard.writeText(option.dataset.voiceId).then(function () {
        if (window.glyphoxaToast) window.glyphoxaToast("Copied " + option.dataset.voiceId);
      });
    }
  });

  // ---- keyboard ordering keeps focus on the moved NPC's button ------------------------------------
  var lastMove = null;
  document.addEventListener("click", function (evt) {
    var b = evt.target.closest && evt.target.closest("[data-move]");
    if (b) lastMove = { id: b.closest("li[data-id]").dataset.id, dir: b.dataset.move };
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    // SortableJS leaves style attributes on the items; htmx would copy them onto the new items
    // while settling, which the CSP (style-src 'self') refuses. They are stale anyway.
    if (evt.detail.target && evt.detail.target.id === "cast") {
      evt.detail.target.querySelectorAll("[style]").forEach(function (n) { n.removeAttribute("style"); });
    }
    // A concurrent-edit conflict (409) carries the form with its message: show it.
    if (evt.detail.xhr.status === 409 && evt.detail.target && /-form$/.test(evt.detail.target.id)) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSwap", function (evt) {
    var target = evt.detail.target;
    if (!target) return;
    if (target.id === "cast" && lastMove) {
      var li = document.getElementById("npc-" + lastMove.id);
      var b = li && li.querySelector('[data-move="' + lastMove.dir + '"]');
      if (b && b.disabled) b = li.querySelector("[data-move]:not([disabled])");
      if (b) b.focus();
      lastMove = null;
    }
    if (!/-form$|^confirm$/.test(target.id)) return;
    var field = Array.prototype.filter.call(target.querySelectorAll('[aria-invalid="true"]'), function (f) {
      return f.offsetParent !== null;
    })[0];
    var notice = target.querySelector(".notice-error");
    if (notice && (!field || notice.querySelector("a"))) { notice.setAttribute("tabindex", "-1"); notice.focus(); }
    else if (field) { field.focus(); }
  });

  if (window.htmx) { window.htmx.onLoad(init); } else { document.addEventListener("DOMContentLoaded", function () { init(document); }); }
})();
