// Knowledge graph island: draws the campaign's graph with the vendored cytoscape.js and links
// each entity to its page. Without JavaScript (or cytoscape) the relationship list below it is
// the whole view, so nothing here is essential.
(function () {
  "use strict";
  var host = document.getElementById("graph");
  if (!host || typeof window.cytoscape !== "function") return;

  function css(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    return (v && v.trim()) || fallback;
  }

  // The same colours as the type badges (sessions.css .type-*), so the legend is the badges.
  var TYPE_VARS = { npc: "--accent", pc: "--spk-1", location: "--ok", item: "--warn", faction: "--danger" };

  fetch(host.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(function (data) {
      if (!data.nodes || !data.nodes.length) return;
      host.hidden = false;
      var hint = document.querySelector(".graph-hint");
      if (hint) hint.hidden = false;
      var text = css("--text", "#1d1b18");
      var muted = css("--muted", "#57524a");
      var surface = css("--surface", "#ffffff");
      var elements = data.nodes.map(function (n) {
        return { data: { id: n.id, label: n.label, type: n.type, url: n.url, degree: n.degree,
                         colour: css(TYPE_VARS[n.type] || "--muted", "#6b3fd4") } };
      }).concat(data.edges.map(function (e, i) {
        return { data: { id: "e" + i, source: e.source, target: e.target, label: e.label, confirmed: e.confirmed } };
      }));
      var cy = window.cytoscape({
        container: host,
        elements: elements,
        style: [
          { selector: "node", style: {
            "background-color": "data(colour)", "label": "data(label)", "color": text, "font-size": 12,
            "text-valign": "bottom", "text-margin-y": 4, "text-outline-color": surface, "text-outline-width": 2,
            "min-zoomed-font-size": 7,
            "width": "mapData(degree, 0, 12, 16, 40)", "height": "mapData(degree, 0, 12, 16, 40)" } },
          { selector: "edge", style: {
            "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 1.5, "line-color": muted,
            "target-arrow-color": muted, "label": "data(label)", "font-size": 9, "color": muted,
            "text-rotation": "autorotate", "text-outline-color": surface, "text-outline-width": 2,
            "min-zoomed-font-size": 10 } },
          { selector: "edge[?confirmed]", style: { "width": 3 } },
          { selector: "node:selected", style: { "border-width": 3, "border-color": text } }
        ],
        layout: { name: "cose", animate: false, nodeRepulsion: 400000, idealEdgeLength: 110, nodeOverlap: 20,
                  gravity: 0.25, numIter: 1500, padding: 24 }
      });
      cy.on("tap", "node", function (evt) {
        var url = evt.target.data("url");
        if (url) window.location.assign(url);
      });
    })
    .catch(function () { /* the lists below already show everything */ });
})();
