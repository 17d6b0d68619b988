// Small formatting helpers shared by the pages.
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function fmtMs(ms, short = false) {
  if (ms == null || Number.isNaN(ms)) return "–";
  if (ms >= 60000) return `${(ms / 60000).toFixed(1)} min`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10000 || short ? 1 : 2).replace(/\.0$/, short ? "" : ".0")} s`;
  if (ms >= 10 || short) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDateTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(ms)}`;
}

export function fmtValue(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}
