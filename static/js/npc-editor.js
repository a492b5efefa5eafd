// Campaign and NPC editors: progressive enhancement only. Every form works without this file
// (lists are one item per line in a textarea, attributes are key/value inputs, ordering has
// move up/down buttons). The islands are Alpine components (CSP build: registered here, named by
// the templates); SortableJS does drag ordering. No inline scripts: the CSP is script-src 'self'.
(function () {
  "use strict";

  var t = function (message, vars) { return window.glyphoxa.t(message, vars); };
  // Numbers as the page's language writes them (1,234 / 1.234).
  function num(n) { return n.toLocaleString(document.documentElement.lang || undefined); }

  function lines(text) {
    return String(text || "").split(/\n+/).map(function (v) { return v.trim(); }).filter(Boolean);
  }

  document.addEventListener("alpine:init", function () {
    var Alpine = window.Alpine;
    var ids = 0;

    // ---- list field: one input per item over the hidden textarea (the form field) ----------
    Alpine.data("listEditor", function () {
      return {
        items: [],
        pending: "",
        label: t("item"),
        enhanced: false,
        init: function () {
          this.label = this.$root.dataset.itemLabel || t("item");
          this.items = lines(this.$refs.source.value).map(function (v) { return { id: ++ids, value: v }; });
          this.enhanced = true;
        },
        get plain() { return !this.enhanced; },
        get labelFor() { return this.$refs.source.id + (this.enhanced ? "-new" : ""); },
        // The textarea always holds what would be saved, including a typed but not yet added item.
        sync: function () {
          var values = this.items.map(function (i) { return i.value.trim(); }).filter(Boolean).concat(lines(this.pending));
          this.$refs.source.value = values.join("\n");
        },
        typePending: function (evt) { this.pending = evt.target.value; this.sync(); },
        add: function () {
          var fresh = lines(this.pending);
          if (!fresh.length) return;
          var self = this;
          fresh.forEach(function (v) { self.items.push({ id: ++ids, value: v }); });
          this.pending = "";
          this.$refs.adder.value = "";
          this.sync();
          this.$refs.adder.focus();
        },
        noop: function () {},
        // per item (x-for scope: item, index)
        get itemLabel() { return this.label + " " + (this.index + 1); },
        get isFirst() { return this.index === 0; },
        get isLast() { return this.index === this.items.length - 1; },
        edit: function (evt) { this.item.value = evt.target.value; this.sync(); },
        up: function () { this.move(this.index, -1, "[data-up]"); },
        down: function () { this.move(this.index, 1, "[data-down]"); },
        move: function (from, step, selector) {
          var to = from + step;
          if (to < 0 || to >= this.items.length) return;
          var moved = this.items.splice(from, 1)[0];
          this.items.splice(to, 0, moved);
          this.sync();
          var root = this.$root;
          this.$nextTick(function () {
            var li = root.querySelector('[data-item="' + moved.id + '"]');
            if (!li) return;
            var b = li.querySelector(selector);
            (b && !b.disabled ? b : li.querySelector("input")).focus();
          });
        },
        remove: function () {
          var at = this.index;
          this.items.splice(at, 1);
          this.sync();
          var root = this.$root, adder = this.$refs.adder, next = this.items[Math.min(at, this.items.length - 1)];
          this.$nextTick(function () {
            var li = next && root.querySelector('[data-item="' + next.id + '"]');
            (li ? li.querySelector("input") : adder).focus();
          });
        }
      };
    });

    // ---- attributes: rows of key/value inputs; a removed row is cleared (the server drops it) ---
    Alpine.data("kvEditor", function () {
      return {
        plain: false,
        extra: [],
        next: 0,
        init: function () { this.next = parseInt(this.$root.dataset.first || "1", 10); },
        addRow: function () {
          var n = this.next++;
          this.extra.push({ id: n, label: t("Attribute %(n)s", { n: n }), keyId: "attr-key-" + n, valueId: "attr-value-" + n,
                            keyLabel: t("Key %(n)s", { n: n }), valueLabel: t("Value %(n)s", { n: n }) });
          var root = this.$root;
          this.$nextTick(function () { var key = root.querySelector("#attr-key-" + n); if (key) key.focus(); });
        }
      };
    });
    Alpine.data("kvRow", function () {
      return {
        removed: false,
        remove: function () {
          this.$refs.key.value = "";
          this.$refs.value.value = "";
          this.removed = true;
          var add = this.$root.parentNode.querySelector(":scope > button");
          if (add) add.focus();
        }
      };
    });

    // ---- character counter under a textarea ----------------------------------------------------
    Alpine.data("counter", function () {
      return {
        length: 0,
        max: 0,
        plain: true,
        init: function () {
          this.max = parseInt(this.$refs.text.getAttribute("maxlength") || "0", 10);
          this.length = this.$refs.text.value.length;
          this.plain = false;
        },
        count: function (evt) { this.length = evt.target.value.length; },
        get counterText() {
          return this.max
            ? t("%(count)s / %(max)s characters", { count: num(this.length), max: num(this.max) })
            : t("%(count)s characters", { count: num(this.length) });
        },
        get counterClass() { return "counter" + (this.max && this.length > this.max * 0.9 ? " near-limit" : ""); }
      };
    });

    // ---- voice picker: search without submitting the NPC; choosing a voice fills the voice id ---
    Alpine.data("voicePicker", function () {
      return {
        search: function () {
          var q = document.getElementById("voice-q");
          if (q && window.htmx) window.htmx.trigger(q, "search");
        },
        choose: function (evt) {
          var option = evt.currentTarget;
          var input = document.getElementById("voice_id");
          var name = option.querySelector("strong").textContent;
          if (input) {
            input.value = option.dataset.voiceId;
            var provider = document.getElementById("voice_provider");
            if (provider && option.dataset.provider && provider.querySelector('option[value="' + option.dataset.provider + '"]')) {
              provider.value = option.dataset.provider;
            }
            var picker = option.closest("details");
            if (picker) picker.open = false;
            input.focus();
            window.glyphoxa.toast(t("Voice set to %(name)s. Save to keep it.", { name: name }), "success", "voice");
          } else if (navigator.clipboard) {
            navigator.clipboard.writeText(option.dataset.voiceId).then(function () {
              window.glyphoxa.toast(t("Copied %(id)s", { id: option.dataset.voiceId }), "success", "voice");
            });
          }
        }
      };
    });
  });

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
    scope.querySelectorAll("[data-sortable]").forEach(sortable);
    if (scope.matches && scope.matches("[data-sortable]")) sortable(scope);
  }

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
