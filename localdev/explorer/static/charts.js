// The overview's two charts on uPlot (served from node_modules): a duration heatmap and
// P95 lines by command, sharing one time axis, both with deployment markers.
import uPlot from "/vendor/uPlot.esm.js";
import { fmtMs, fmtTime, esc } from "/static/format.js";

export const PALETTE = ["#4f46e5", "#e8590c", "#0ca678", "#d6336c", "#1c7ed6", "#f59f00", "#7048e8", "#2f9e44",
  "#c2255c", "#087f8c"];
// Few traces -> pale, many -> deep: a perceptual ramp (light lavender to deep indigo).
const RAMP = [[237, 233, 254], [167, 139, 250], [124, 58, 237], [91, 33, 182], [46, 16, 101]];
const AXIS = { stroke: "#5c6370", grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#e3e6ea", width: 1 },
  font: "11px system-ui, sans-serif" };
const Y_AXIS_SIZE = 64;

export function cellColor(count, max) {
  const t = max <= 1 ? 0.55 : 0.2 + 0.8 * Math.sqrt((count - 1) / (max - 1));
  const pos = t * (RAMP.length - 1);
  const i = Math.min(Math.floor(pos), RAMP.length - 2);
  const f = pos - i;
  const c = RAMP[i].map((v, k) => Math.round(v + (RAMP[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// Save the canvas state and clip drawing to the plot area; the caller restores.
function clipToPlot(u) {
  const { left, top, width, height } = u.bbox;
  u.ctx.save();
  u.ctx.beginPath();
  u.ctx.rect(left, top, width, height);
  u.ctx.clip();
  return u.ctx;
}

function drawMarkers(u, markers) {
  const ctx = clipToPlot(u);
  const { top, height } = u.bbox;
  ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
  ctx.lineWidth = 1.5 * devicePixelRatio;
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  for (const m of markers) {
    const x = Math.round(u.valToPos(m.time_ms / 1000, "x", true));
    ctx.strokeStyle = m.type === "version" ? "#868e96" : "#e03131";
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    const label = m.version || m.type;
    const w = ctx.measureText(label).width + 8 * devicePixelRatio;
    ctx.fillStyle = "rgba(255,255,255,.9)";
    ctx.fillRect(x + 3 * devicePixelRatio, top + 2 * devicePixelRatio, w, 14 * devicePixelRatio);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(label, x + 7 * devicePixelRatio, top + 13 * devicePixelRatio);
  }
  ctx.restore();
}

// Log-scale ticks at 1, 2, 5 × 10^k ms (uPlot's own log ticks are every integer multiple).
function logSplits(u, axisIdx, min, max) {
  const out = [];
  for (let k = Math.floor(Math.log10(min)); k <= Math.ceil(Math.log10(max)); k++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** k;
      if (v >= min * 0.999 && v <= max * 1.001) out.push(v);
    }
  }
  return out.length >= 2 ? out : [min, max];
}

function durationAxis() {
  return { ...AXIS, size: Y_AXIS_SIZE, splits: logSplits,
    values: (u, vals) => vals.map((v) => (v == null ? "" : fmtMs(v, true))) };
}

function timeAxis() {
  return { ...AXIS, values: (u, vals) => vals.map((v) => fmtTime(v * 1000)) };
}

function cellAt(h, t_ms, d_ms) {
  const col = Math.floor((t_ms - h.t0_ms) / h.col_ms);
  const edges = h.edges_ms;
  let row = -1;
  for (let i = 0; i < edges.length - 1; i++) if (d_ms >= edges[i] && d_ms < edges[i + 1]) row = i;
  return h.cells.find((c) => c.col === col && c.row === row) || null;
}

// The heatmap: x = trace start, y = end-to-end ms (log rows), colour = how many traces.
// onOpen(traceId) for a click on a cell; onSelect({from_ms, to_ms, min_ms, max_ms}) for a dragged region.
export function heatmapChart(el, tip, data, { onOpen, onSelect }) {
  const h = data.heatmap;
  const edges = h.edges_ms;
  let down = null;
  const opts = {
    width: el.clientWidth, height: 300,
    legend: { show: false },
    scales: {
      x: { time: true, range: () => [data.t0_ms / 1000, data.t1_ms / 1000] },
      y: { distr: 3, log: 10, range: () => [edges[0], edges[edges.length - 1]] },
    },
    axes: [timeAxis(), durationAxis()],
    series: [{}, { label: "traces", stroke: "transparent", points: { show: false }, paths: () => null }],
    cursor: { drag: { x: true, y: true, setScale: false }, points: { show: false }, y: true },
    hooks: {
      draw: [(u) => {
        const ctx = clipToPlot(u);
        for (const c of h.cells) {
          const t0 = (h.t0_ms + c.col * h.col_ms) / 1000;
          const x0 = u.valToPos(t0, "x", true);
          const x1 = u.valToPos(t0 + h.col_ms / 1000, "x", true);
          const y0 = u.valToPos(edges[c.row + 1], "y", true);
          const y1 = u.valToPos(edges[c.row], "y", true);
          ctx.fillStyle = cellColor(c.count, h.max_count);
          const gap = devicePixelRatio;
          ctx.fillRect(x0, y0, Math.max(x1 - x0 - gap, 2 * gap), Math.max(y1 - y0 - gap, 2 * gap));
        }
        ctx.restore();
        drawMarkers(u, data.markers);
      }],
      setCursor: [(u) => {
        const { left, top } = u.cursor;
        if (left == null || left < 0) { tip.hidden = true; return; }
        const cell = cellAt(h, u.posToVal(left, "x") * 1000, u.posToVal(top, "y"));
        if (!cell) { tip.hidden = true; u.over.style.cursor = "crosshair"; return; }
        u.over.style.cursor = "pointer";
        const lo = edges[cell.row], hi = edges[cell.row + 1];
        tip.innerHTML = `<b>${cell.count} trace${cell.count > 1 ? "s" : ""}</b> · ${fmtMs(lo)}–${fmtMs(hi)}<br>` +
          `${fmtTime(h.t0_ms + cell.col * h.col_ms)}<br><span class="muted">click: open the slowest (${esc(fmtMs(cell.slowest_ms))})</span>`;
        tip.hidden = false;
        tip.style.left = `${left + u.over.offsetLeft + 14}px`;
        tip.style.top = `${top + u.over.offsetTop + 10}px`;
      }],
      setSelect: [(u) => {
        const s = u.select;
        if (s.width < 4 || s.height < 4) return;
        onSelect({
          from_ms: u.posToVal(s.left, "x") * 1000, to_ms: u.posToVal(s.left + s.width, "x") * 1000,
          max_ms: u.posToVal(s.top, "y"), min_ms: u.posToVal(s.top + s.height, "y"),
        });
      }],
    },
  };
  const u = new uPlot(opts, [[data.t0_ms / 1000, data.t1_ms / 1000], [null, null]], el);
  Object.assign(el, { chart: u, heatmap: h }); // for the browser test to find a cell
  u.over.addEventListener("mousedown", (e) => { down = [e.clientX, e.clientY]; });
  u.over.addEventListener("click", (e) => {
    if (!down || Math.abs(e.clientX - down[0]) > 3 || Math.abs(e.clientY - down[1]) > 3) return;
    const { left, top } = u.cursor;
    const cell = cellAt(h, u.posToVal(left, "x") * 1000, u.posToVal(top, "y"));
    if (cell) onOpen(cell.trace_id);
  });
  u.over.addEventListener("mouseleave", () => { tip.hidden = true; });
  return u;
}

// P95 of end-to-end ms per command per time bucket; the legend shows values under the cursor.
export function p95Chart(el, data, colors) {
  const names = Object.keys(data.p95.series);
  const xs = data.p95.x_ms.map((x) => x / 1000);
  const series = [{ value: (u, v) => (v == null ? "" : fmtTime(v * 1000)) }].concat(names.map((name) => ({
    label: name, stroke: colors[name], width: 2, spanGaps: true,
    points: { show: true, size: 6, fill: colors[name] },
    value: (u, v) => (v == null ? "–" : fmtMs(v)),
  })));
  const opts = {
    width: el.clientWidth, height: 220,
    scales: { x: { time: true, range: () => [data.t0_ms / 1000, data.t1_ms / 1000] }, y: { distr: 3, log: 10 } },
    axes: [timeAxis(), durationAxis()],
    series,
    cursor: { drag: { x: false, y: false } },
    hooks: { draw: [(u) => drawMarkers(u, data.markers)] },
  };
  return new uPlot(opts, [xs, ...names.map((n) => data.p95.series[n])], el);
}
