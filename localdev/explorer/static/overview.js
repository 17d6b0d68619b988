// Overview: heatmap of end-to-end duration, P95 lines by command, the command table,
// deployment markers, and "what makes these slow" for a region dragged on the heatmap.
import { api, emptyState, go } from "/static/common.js";
import { PALETTE, heatmapChart, p95Chart, cellColor } from "/static/charts.js";
import { esc, fmtMs, fmtTime, fmtDateTime } from "/static/format.js";

const WINDOWS = [["15m", "15 min"], ["1h", "hour"], ["1d", "day"], ["all", "all"]];

function colorsFor(names) {
  const colors = {};
  [...names].sort().forEach((n, i) => { colors[n] = PALETTE[i % PALETTE.length]; });
  return colors;
}

function statsTable(rows, colors, selected) {
  const maxP95 = Math.max(1, ...rows.map((r) => r.p95 || 0));
  const body = rows.map((r) => `
    <tr data-command="${esc(r.command)}" class="${r.command === selected ? "selected" : ""}">
      <td><span class="swatch" style="background:${colors[r.command]}"></span>${esc(r.command)}</td>
      <td class="num">${r.count}</td>
      <td class="num">${fmtMs(r.p50)}</td>
      <td class="num p95"><div class="inbar" style="width:${(100 * (r.p95 || 0)) / maxP95}%;background:${colors[r.command]}"></div><span>${fmtMs(r.p95)}</span></td>
      <td class="num">${fmtMs(r.p99)}</td>
      <td class="num ${r.errors ? "bad" : "zero"}">${r.errors}</td>
      <td class="num ${r.cold_starts ? "" : "zero"}">${r.cold_starts}</td>
      <td class="num"><a data-link href="/traces?command=${encodeURIComponent(r.command)}">traces →</a></td>
    </tr>`).join("");
  return `<table class="stats" id="stats">
    <thead><tr><th>command</th><th class="num">traces</th><th class="num">P50</th><th class="num">P95</th>
      <th class="num">P99</th><th class="num">errors</th><th class="num">cold starts</th><th></th></tr></thead>
    <tbody>${body}</tbody></table>`;
}

function markerList(markers) {
  if (!markers.length) return "";
  return `<ul class="markers">${markers.map((m) => `<li class="${m.type === "version" ? "version" : "deploy"}">
    <span class="dash"></span><b>${esc(m.version || m.type)}</b> <span class="muted">${fmtDateTime(m.time_ms)}</span>
    ${esc(m.message)}${m.url ? ` <a href="${esc(m.url)}" target="_blank" rel="noopener">details</a>` : ""}</li>`).join("")}</ul>`;
}

function scaleLegend(max) {
  if (!max) return "";
  const steps = [1, Math.max(1, Math.round(max / 3)), Math.max(1, Math.round((2 * max) / 3)), max]
    .filter((v, i, a) => a.indexOf(v) === i);
  return `<span class="scale">${steps.map((n) => `<i style="background:${cellColor(n, max)}"></i>${n}`).join(" ")} traces per cell</span>`;
}

function bubblePanel(result, sel, query) {
  const dims = result.fields.filter((d) => d.score > 0.5).slice(0, 9);
  const head = `<div class="card-head"><h2>What makes these slow?</h2>
    <div class="hint"><b>${result.selected}</b> selected traces (${fmtMs(sel.min_ms)}–${fmtMs(sel.max_ms)},
      ${fmtTime(sel.from_ms)}–${fmtTime(sel.to_ms)}) against the other <b>${result.baseline}</b> in view.
      <a data-link href="/traces?${new URLSearchParams(query)}">show the selected traces →</a>
      <button class="link" id="clear-sel">clear</button></div></div>`;
  if (!result.selected) return `${head}<p class="muted">No traces in that region: drag over some cells.</p>`;
  if (!dims.length) return `${head}<p class="muted">Nothing stands out: the selected traces look like the rest.</p>`;
  return `${head}<div class="bubbles">${dims.map((d) => `<div class="dim">
      <div class="dim-head"><code>${esc(d.field)}</code><span class="score">+${Math.round(d.score)} pts</span></div>
      ${d.values.slice(0, 4).map((v) => `<div class="val">
        <span class="vname" title="${esc(v.value)}">${esc(v.value)}</span>
        <span class="bars"><i class="sel" style="width:${v.selected_pct}%"></i><i class="base" style="width:${v.baseline_pct}%"></i></span>
        <span class="pct"><b>${Math.round(v.selected_pct)}%</b> vs ${Math.round(v.baseline_pct)}%</span></div>`).join("")}
    </div>`).join("")}</div>
    <div class="legend-row"><span class="swkey sel"></span>selected <span class="swkey base"></span>the rest</div>`;
}

export function renderOverview(root, params) {
  const state = { window: params.get("window") || "all", command: params.get("command") || null, selection: null };
  let charts = [];
  let data = null;
  root.innerHTML = `<div class="toolbar"><div class="seg" id="windows">${WINDOWS.map(([k, label]) =>
    `<button data-window="${k}">${k === "all" ? "all" : `last ${label}`}</button>`).join("")}</div>
    <div class="chips" id="commands"></div></div><div id="body"><div class="card loading">Loading…</div></div>`;
  const body = root.querySelector("#body");

  function syncUrl() {
    const q = new URLSearchParams();
    if (state.window !== "all") q.set("window", state.window);
    if (state.command) q.set("command", state.command);
    history.replaceState(null, "", `/${q.toString() ? `?${q}` : ""}`);
  }

  function selectionQuery() {
    const s = state.selection;
    const q = { window: state.window, from_ms: Math.floor(s.from_ms), to_ms: Math.ceil(s.to_ms),
      min_ms: s.min_ms.toFixed(1), max_ms: s.max_ms.toFixed(1) };
    if (state.command) q.command = state.command;
    return q;
  }

  async function loadBubble() {
    const panel = body.querySelector("#bubble");
    if (!panel) return;
    if (!state.selection) { panel.hidden = true; return; }
    const q = selectionQuery();
    const result = await api("/api/bubbleup", q);
    panel.innerHTML = bubblePanel(result, state.selection, q);
    panel.hidden = false;
    panel.querySelector("#clear-sel")?.addEventListener("click", () => { state.selection = null; loadBubble(); });
  }

  function draw() {
    drawnWidth = body.clientWidth;
    charts.forEach((c) => c.destroy());
    charts = [];
    for (const b of root.querySelectorAll("#windows button")) b.classList.toggle("on", b.dataset.window === state.window);
    const names = data.commands.map((r) => r.command);
    if (state.command && !names.includes(state.command)) names.push(state.command);
    const colors = colorsFor(names);
    root.querySelector("#commands").innerHTML = [`<button data-command="" class="${state.command ? "" : "on"}">all commands</button>`]
      .concat([...names].sort().map((n) => `<button data-command="${esc(n)}" class="${n === state.command ? "on" : ""}">
        <span class="swatch" style="background:${colors[n]}"></span>${esc(n)}</button>`)).join("");
    if (!data.total_traces) { body.innerHTML = emptyState(data); return; }
    if (!data.commands.length) {
      body.innerHTML = `<div class="card empty"><h2>No traces in this window</h2>
        <p>${data.total_traces} trace${data.total_traces > 1 ? "s are" : " is"} in the file, all older.
        <button class="primary" data-window="all">Show all</button></p></div>`;
      return;
    }
    const shown = state.command ? `<span class="sub">${esc(state.command)}</span>` : `<span class="sub">all commands</span>`;
    body.innerHTML = `
      <section class="card">
        <div class="card-head"><h2>End-to-end duration ${shown}</h2>
          <div class="hint">What the user waited (<code>app.end_to_end_ms</code>): message received → reply accepted by Discord.
            <b>Drag</b> over a region to see what makes it slow; <b>click</b> a cell to open its slowest trace.</div></div>
        <div class="chart-wrap"><div id="heatmap"></div><div id="tip" class="tip" hidden></div></div>
        <div class="legend-row">${scaleLegend(data.heatmap.max_count)}
          ${data.markers.length ? `<span class="key-dash"></span>deployment markers` : ""}</div>
        ${markerList(data.markers)}
      </section>
      <section class="card" id="bubble" hidden></section>
      <section class="card">
        <div class="card-head"><h2>P95 by command</h2><div class="hint">per time bucket, log scale</div></div>
        <div id="p95"></div>
      </section>
      <section class="card">
        <div class="card-head"><h2>Commands</h2><div class="hint">slowest P95 first · click a row to show only that command</div></div>
        ${statsTable(data.commands, colors, state.command)}
      </section>`;
    charts.push(heatmapChart(body.querySelector("#heatmap"), body.querySelector("#tip"), data, {
      onOpen: (id) => go(`/trace/${id}`),
      onSelect: (sel) => { state.selection = sel; loadBubble().then(() => body.querySelector("#bubble").scrollIntoView({ behavior: "smooth", block: "nearest" })); },
    }));
    if (Object.keys(data.p95.series).length) charts.push(p95Chart(body.querySelector("#p95"), data, colors));
    if (state.selection) loadBubble();
  }

  // A live refresh waits while the mouse is down on the heatmap (it would drop a drag half-way).
  let holding = false, deferred = false;
  root.addEventListener("mousedown", (e) => { holding = Boolean(e.target.closest("#heatmap")); });
  window.addEventListener("mouseup", () => {
    holding = false;
    if (deferred && body.isConnected) { deferred = false; setTimeout(load, 50); }
  });

  async function load() {
    if (holding) { deferred = true; return; }
    try {
      const fresh = await api("/api/overview", { window: state.window, command: state.command });
      if (holding) { deferred = true; return; } // the mouse went down while we were fetching
      data = fresh;
      draw();
    } catch (err) {
      body.innerHTML = `<div class="card error">Could not load the overview: ${esc(err.message)}</div>`;
    }
  }

  root.addEventListener("click", (e) => {
    const w = e.target.closest("[data-window]");
    const c = e.target.closest("#commands [data-command], #stats tr[data-command]");
    if (w) { state.window = w.dataset.window; state.selection = null; }
    else if (c && !e.target.closest("a")) {
      const cmd = c.dataset.command || null;
      state.command = c.tagName === "TR" && state.command === cmd ? null : cmd;
      state.selection = null;
    } else return;
    syncUrl();
    load();
  });
  let resizeTimer;
  let drawnWidth = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      // Only a real width change (a scrollbar appearing fires resize too), and never mid-drag.
      if (!data || !body.isConnected || body.clientWidth === drawnWidth) return;
      if (holding) deferred = true;
      else draw();
    }, 150);
  });
  load();
  return { refresh: load };
}
