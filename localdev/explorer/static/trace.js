// One trace as a waterfall across both services: spans nested and to scale; click a span
// for its attributes, events and logs (app.response, rate limits, flag evaluations, errors, the
// Python log records written while it was the current span, marked on its bar at their moment).
import { api } from "/static/common.js";
import { esc, fmtMs, fmtDateTime, fmtValue } from "/static/format.js";

const SERVICE_COLORS = ["#5b5bd6", "#e8890c", "#0ca678", "#d6336c", "#1c7ed6"];
const FIRST_ATTRS = ["app.command", "app.args", "app.response", "app.error", "app.end_to_end_ms", "faas.coldstart",
  "error.type", "http.response.status_code", "discord.author.name", "discord.guild.id"];

function niceStep(total) {
  const raw = total / 6;
  const pow = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) || pow * 10;
}

function eventClass(name) {
  if (name === "exception") return "ev-err";
  if (/rate|429/i.test(name)) return "ev-rate";
  if (name.startsWith("feature_flag")) return "ev-flag";
  return "";
}

function logClass(severity) {
  if (/^(ERROR|FATAL)/.test(severity)) return "lg-err";
  if (/^WARN/.test(severity)) return "lg-warn";
  return "";
}

function heading(t) {
  const s = t.summary;
  const root = t.spans.find((r) => r.depth === 0) || t.spans[0];
  const trigger = root?.attributes["app.trigger"] === "slash" ? "/" : "!";
  const args = root?.attributes["app.args"] ? ` ${root.attributes["app.args"]}` : "";
  const top = [...t.spans].sort((a, b) => b.self_ms - a.self_ms).slice(0, 4).filter((r) => r.self_ms > 0);
  const total = Math.max(t.duration_ms, 1e-6);
  return `<section class="card trace-head">
    <div class="title-row"><h1><span class="cmd big">${esc(trigger + s.command + args)}</span></h1>
      ${s.coldstart ? '<span class="badge cold">cold start</span>' : ""}${s.error ? '<span class="badge err">error</span>' : ""}
      ${s.duration_ms == null ? '<span class="badge">in flight</span>' : ""}</div>
    <div class="facts">
      <div><label>end-to-end</label><b>${fmtMs(s.duration_ms)}</b></div>
      <div><label>wall time</label><b>${fmtMs(t.duration_ms)}</b></div>
      <div><label>spans</label><b>${t.spans.length}</b></div>
      <div><label>started</label><b>${fmtDateTime(t.start_ms)}</b></div>
      <div><label>user</label><b>${esc(s.user || "–")}</b></div>
      <div class="grow"><label>trace id</label><code id="trace-id">${esc(t.trace_id)}</code>
        <button class="link" id="copy">copy link</button></div>
    </div>
    <div class="where"><label>where the time went: each moment counted once, for the innermost span running then</label>
      ${top.map((r) => `<div class="where-row"><span class="wname">${esc(r.name)}</span>
        <span class="wbar"><i style="width:${(100 * r.self_ms) / total}%"></i></span>
        <span class="wval">${fmtMs(r.self_ms)} · ${Math.round((100 * r.self_ms) / total)}%</span></div>`).join("")}
    </div></section>`;
}

function waterfall(t, colors) {
  const total = Math.max(t.duration_ms, 1e-3);
  const step = niceStep(total);
  const ticks = [];
  for (let v = 0; v <= total + 1e-9; v += step) ticks.push(v);
  const pct = (ms) => Math.min(100, Math.max(0, (100 * ms) / total));
  const rows = t.spans.map((r, i) => {
    const left = pct(r.offset_ms);
    const width = Math.max(pct(r.duration_ms), 0.25);
    const label = left > 62 ? `style="right:${100 - left}%" class="wf-dur before"` : `style="left:${left + width}%" class="wf-dur"`;
    const events = r.events.map((e) => `<i class="ev ${eventClass(e.name)}" style="left:${pct(e.offset_ms)}%"
      title="${esc(e.name)} at ${fmtMs(e.offset_ms)}"></i>`).join("") + r.logs.map((l) => `<i class="lg ${logClass(l.severity)}"
      style="left:${pct(l.offset_ms)}%" title="${esc(l.severity)} ${esc(l.logger)}: ${esc(l.body)} at ${fmtMs(l.offset_ms)}"></i>`).join("");
    return `<div class="wf-row ${r.error ? "err" : ""}" data-i="${i}">
      <div class="wf-name" style="padding-left:${10 + r.depth * 16}px" title="${esc(r.service)}">
        <i class="svc" style="background:${colors[r.service]}"></i><span>${esc(r.name)}</span>${r.error ? '<b class="bang">!</b>' : ""}${
          (r.links || []).map((l) => `<a class="span-link" data-link href="/trace/${esc(l.trace_id)}" title="linked trace ${esc(l.trace_id)}">&#8599; linked</a>`).join("")}</div>
      <div class="wf-track"><div class="wf-bar" style="left:${left}%;width:${width}%;background:${colors[r.service]}"></div>
        <span ${label}>${fmtMs(r.duration_ms)}</span>${events}</div></div>`;
  }).join("");
  return `<section class="card waterfall">
    <div class="services">${Object.entries(colors).map(([s, c]) => `<span><i class="svc" style="background:${c}"></i>${esc(s)}</span>`).join("")}</div>
    <div class="wf-axis"><div class="wf-name">span</div><div class="wf-track">${ticks.map((v) =>
      `<span class="tick" style="left:${pct(v)}%">${fmtMs(v, true)}</span>`).join("")}</div></div>
    <div id="wf-rows">${rows}</div></section>`;
}

function detail(r) {
  const keys = Object.keys(r.attributes).sort((a, b) => {
    const ia = FIRST_ATTRS.indexOf(a), ib = FIRST_ATTRS.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const status = r.status.code === "ERROR" ? `<span class="badge err">ERROR</span> ${esc(r.status.description || "")}` :
    esc(r.status.code || "UNSET");
  return `<h2>${esc(r.name)}</h2>
    <dl class="kv">
      <dt>service</dt><dd>${esc(r.service)}${r.version ? ` <span class="muted">${esc(r.version)}</span>` : ""}</dd>
      <dt>kind</dt><dd>${esc(r.kind || "")}</dd>
      <dt>start</dt><dd>+${fmtMs(r.offset_ms)}</dd>
      <dt>duration</dt><dd>${fmtMs(r.duration_ms)} <span class="muted">(${fmtMs(r.self_ms)} its own)</span></dd>
      <dt>status</dt><dd>${status}</dd>
    </dl>
    <h3>Attributes <span class="muted">${keys.length}</span></h3>
    <table class="attrs">${keys.map((k) => `<tr class="${FIRST_ATTRS.includes(k) ? "key" : ""}"><th>${esc(k)}</th>
      <td>${esc(fmtValue(r.attributes[k]))}</td></tr>`).join("")}</table>
    ${(r.links || []).length ? `<h3>Links <span class="muted">${r.links.length}</span></h3>${r.links.map((l) => `
      <div class="event"><a class="span-link" data-link href="/trace/${esc(l.trace_id)}">trace ${esc(l.trace_id)}</a>
      <span class="muted">span ${esc(l.span_id)}</span>
      <table class="attrs">${Object.entries(l.attributes).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(fmtValue(v))}</td></tr>`).join("")}</table></div>`).join("")}` : ""}
    ${r.events.length ? `<h3>Events <span class="muted">${r.events.length}</span></h3>${r.events.map((e) => `
      <div class="event ${eventClass(e.name)}"><div><b>${esc(e.name)}</b> <span class="muted">+${fmtMs(e.offset_ms)}</span></div>
      <table class="attrs">${Object.entries(e.attributes).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(fmtValue(v))}</td></tr>`).join("")}</table></div>`).join("")}` : ""}
    ${r.logs.length ? `<h3>Logs <span class="muted">${r.logs.length}</span></h3>${r.logs.map((l) => `
      <div class="log ${logClass(l.severity)}"><div><b>${esc(l.severity)}</b> <span class="muted">+${fmtMs(l.offset_ms)} ${esc(l.logger)}</span></div>
      <pre>${esc(l.body)}</pre>${l.attributes["exception.stacktrace"] ? `<pre class="muted">${esc(l.attributes["exception.stacktrace"])}</pre>` : ""}</div>`).join("")}` : ""}`;
}

export function renderTrace(root, traceId) {
  let chosen = null;
  let shown = -1; // spans on screen: a refresh redraws only when this trace changed
  async function load() {
    let t;
    try {
      t = await api(`/api/trace/${encodeURIComponent(traceId)}`);
    } catch (err) {
      root.innerHTML = `<div class="card empty"><h2>${err.status === 404 ? "Trace not found (yet)" : "Cannot open this trace"}</h2>
        <p><code>${esc(traceId)}</code>: ${esc(err.message)}.</p>
        ${err.status === 404 ? "<p>Spans are written when each part finishes; this page opens the trace as soon as they arrive.</p>" : ""}</div>`;
      return;
    }
    if (t.spans.length + t.log_count === shown) return;
    shown = t.spans.length + t.log_count;
    const services = [...new Set(t.spans.map((r) => r.service))].sort((a, b) => (a.endsWith("listener") ? -1 : b.endsWith("listener") ? 1 : a.localeCompare(b)));
    const colors = Object.fromEntries(services.map((s, i) => [s, SERVICE_COLORS[i % SERVICE_COLORS.length]]));
    if (chosen === null || chosen >= t.spans.length) {
      chosen = Math.max(0, t.spans.findIndex((r) => / process$/.test(r.name)));
    }
    root.innerHTML = `${heading(t)}<div class="trace-body">${waterfall(t, colors)}<aside class="card detail" id="detail"></aside></div>`;
    const select = (i) => {
      chosen = i;
      root.querySelectorAll(".wf-row").forEach((el) => el.classList.toggle("on", Number(el.dataset.i) === i));
      root.querySelector("#detail").innerHTML = detail(t.spans[i]);
    };
    root.querySelector("#wf-rows").addEventListener("click", (e) => {
      const row = e.target.closest(".wf-row");
      if (row) select(Number(row.dataset.i));
    });
    root.querySelector("#copy").addEventListener("click", (e) => {
      const url = `${location.origin}/trace/${t.trace_id}`;
      navigator.clipboard?.writeText(url).then(() => { e.target.textContent = "copied"; }, () => { e.target.textContent = url; });
    });
    if (location.pathname !== `/trace/${t.trace_id}`) history.replaceState(null, "", `/trace/${t.trace_id}`);
    select(chosen);
  }
  load();
  return { refresh: load };
}
