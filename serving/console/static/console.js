/* loradock console: sortable tables, copy buttons, a tiny canvas chart drawer, the live page.
   No dependencies, no inline scripts (the pages carry a strict CSP); data arrives as
   <script type="application/json"> blocks or from /ui/live.json, and is written with textContent. */
(function () {
  "use strict";

  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function readJSON(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /* -- sortable tables ---------------------------------------------------- */
  function cellValue(row, index, numeric) {
    var cell = row.children[index];
    if (!cell) { return numeric ? -Infinity : ""; }
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (!numeric) { return raw.toLowerCase(); }
    var n = parseFloat(raw);
    return isNaN(n) ? -Infinity : n;
  }
  function makeSortable(table) {
    $all("thead th", table).forEach(function (th, index) {
      th.classList.add("sort");
      th.setAttribute("title", "sort");
      th.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "num";
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        $all("thead th", table).forEach(function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
          var c = x < y ? -1 : (x > y ? 1 : 0);
          return dir === "asc" ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  /* -- canvas charts ------------------------------------------------------ */
  function prepare(canvas) {
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.width, h = canvas.height;
    if (!canvas.getAttribute("data-w")) {
      canvas.setAttribute("data-w", w);
      canvas.setAttribute("data-h", h);
    }
    w = +canvas.getAttribute("data-w"); h = +canvas.getAttribute("data-h");
    canvas.width = w * ratio; canvas.height = h * ratio;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px system-ui, sans-serif";
    return { ctx: ctx, w: w, h: h };
  }
  function niceRange(lo, hi) {
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    var pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  }
  function fmt(v) { if (Number.isInteger(v)) { return String(v); } return Math.abs(v) >= 100 ? v.toFixed(0) : (Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3)); }

  /* Line chart: data = {x_label, series: {name: [[x, y], ...]}}. */
  function lineChart(canvas, data) {
    var c = prepare(canvas), ctx = c.ctx;
    var names = Object.keys(data.series || {});
    var xs = [], ys = [];
    names.forEach(function (n) { data.series[n].forEach(function (p) { xs.push(p[0]); ys.push(p[1]); }); });
    if (!xs.length) { return; }
    var left = 56, right = 150, top = 14, bottom = 34;
    var pw = c.w - left - right, ph = c.h - top - bottom;
    var xr = [Math.min.apply(null, xs), Math.max.apply(null, xs)];
    if (xr[0] === xr[1]) { xr = [xr[0] - 1, xr[1] + 1]; }
    var yr = niceRange(Math.min.apply(null, ys), Math.max.apply(null, ys));
    function X(v) { return left + (v - xr[0]) / (xr[1] - xr[0]) * pw; }
    function Y(v) { return top + ph - (v - yr[0]) / (yr[1] - yr[0]) * ph; }
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.w, c.h);
    ctx.strokeStyle = "#e5e7eb"; ctx.fillStyle = "#4b5563"; ctx.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var yv = yr[0] + (yr[1] - yr[0]) * i / 4;
      ctx.beginPath(); ctx.moveTo(left, Y(yv)); ctx.lineTo(left + pw, Y(yv)); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(fmt(yv), left - 6, Y(yv) + 4);
    }
    var seen = {};
    xs.slice().sort(function (a, b) { return a - b; }).forEach(function (xv) {
      if (seen[xv]) { return; } seen[xv] = true;
      ctx.textAlign = "center"; ctx.fillText(String(xv), X(xv), top + ph + 16);
    });
    ctx.fillText(data.x_label || "", left + pw / 2, c.h - 3);
    names.forEach(function (name, k) {
      var color = COLORS[k % COLORS.length], pts = data.series[name];
      ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 2;
      ctx.beginPath();
      pts.forEach(function (p, j) { if (j) { ctx.lineTo(X(p[0]), Y(p[1])); } else { ctx.moveTo(X(p[0]), Y(p[1])); } });
      ctx.stroke();
      pts.forEach(function (p) { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 3.5, 0, 2 * Math.PI); ctx.fill(); });
      ctx.fillRect(left + pw + 16, top + 8 + k * 20, 12, 12);
      ctx.fillStyle = "#111827"; ctx.textAlign = "left";
      ctx.fillText(name, left + pw + 34, top + 18 + k * 20);
    });
  }

  /* Bar chart: bars = [{le, count}]. */
  function barChart(canvas, bars, xLabel) {
    var c = prepare(canvas), ctx = c.ctx;
    var left = 44, right = 10, top = 12, bottom = 34;
    var pw = c.w - left - right, ph = c.h - top - bottom;
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.w, c.h);
    var max = 1;
    bars.forEach(function (b) { max = Math.max(max, b.count); });
    ctx.strokeStyle = "#e5e7eb"; ctx.fillStyle = "#4b5563";
    for (var i = 0; i <= 4; i++) {
      var y = top + ph - ph * i / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(fmt(max * i / 4), left - 6, y + 4);
    }
    var slot = pw / Math.max(1, bars.length);
    bars.forEach(function (b, k) {
      var h = ph * b.count / max;
      ctx.fillStyle = "#2563eb";
      ctx.fillRect(left + k * slot + slot * 0.15, top + ph - h, slot * 0.7, h);
      ctx.fillStyle = "#4b5563"; ctx.textAlign = "center";
      ctx.fillText("≤" + b.le, left + k * slot + slot / 2, top + ph + 14);
    });
    ctx.fillText(xLabel, left + pw / 2, c.h - 3);
  }

  /* -- the live page ------------------------------------------------------ */
  function num(v, digits) { return (v === null || v === undefined) ? "—" : Number(v).toFixed(digits); }
  function when(t) { return t ? new Date(t * 1000).toISOString().slice(11, 19) + " UTC" : "—"; }

  function renderLive(data) {
    var body = $("#live-domains tbody");
    body.textContent = "";
    data.domains.forEach(function (d) {
      var tr = el("tr"); tr.setAttribute("data-domain", d.domain);
      [[d.domain], [d.follows], [d.version, "serving"], [d.backend ? d.tier + " · " + d.backend : d.tier], [num(d.rps, 2), "num rps"],
       [num(d.p50_ms, 1), "num"], [num(d.p99_ms, 1), "num"], [d.requests, "num requests"], [d.errors, "num"],
       [when(d.swapped_at)]].forEach(function (c) { tr.appendChild(el("td", c[0], c[1])); });
      body.appendChild(tr);
    });
    var cache = $("#live-cache tbody");
    cache.textContent = "";
    data.cache.resident.forEach(function (e) {
      var tr = el("tr");
      [[e.version], [e.tier], [e.pinned ? "yes" : ""], [e.leases, "num"]].forEach(function (c) { tr.appendChild(el("td", c[0], c[1])); });
      cache.appendChild(tr);
    });
    $("#cache-device").textContent = data.cache.resident.filter(function (e) { return e.tier === "device"; }).length;
    $("#cache-host").textContent = data.cache.resident.length;
    $("#cache-hits").textContent = data.cache.hits;
    $("#live-window").textContent = data.window_s;
    $("#live-queue").textContent = data.queue_depth;
    $("#live-updated").textContent = new Date().toISOString().slice(11, 19) + " UTC";
    var recent = $("#live-recent");
    recent.textContent = "";
    if (!data.recent.length) { recent.appendChild(el("li", "none yet", "muted")); }
    data.recent.forEach(function (e) {
      var li = el("li");
      li.appendChild(el("span", when(e.at), "when"));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", e.event, "alias"));
      li.appendChild(document.createTextNode(e.event === "swap" ? " " + e.domain + ": " + e.old + " → " + e.new
                                                               : " " + e.version + " from " + e.tier));
      recent.appendChild(li);
    });
    barChart($("#batch-chart"), data.batch_sizes, "rows per batch");
  }

  function startLive(meta) {
    var url = meta.getAttribute("data-url"), every = 1000 * (+meta.getAttribute("data-refresh") || 2);
    renderLive(readJSON("live-data"));
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (data) { renderLive(data); meta.classList.remove("stale"); })
        .catch(function () { meta.classList.add("stale"); })
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }

  /* -- wiring ------------------------------------------------------------- */
  document.addEventListener("DOMContentLoaded", function () {
    $all("table.sortable").forEach(makeSortable);
    $all("button.copy").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = document.getElementById(button.getAttribute("data-copy")).textContent;
        if (navigator.clipboard) {
          navigator.clipboard.writeText(text).then(function () { button.textContent = "copied"; },
                                                   function () { button.textContent = "select and copy"; });
        }
      });
    });
    $all("input[data-toggle-rows]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.getElementById(box.getAttribute("data-toggle-rows")).classList.toggle("only-changed", box.checked);
      });
    });
    $all("canvas.chart").forEach(function (canvas) {
      var data = readJSON(canvas.getAttribute("data-source"));
      if (data) { lineChart(canvas, data); }
    });
    var meta = document.getElementById("live-meta");
    if (meta) { startLive(meta); }
  });
})();
