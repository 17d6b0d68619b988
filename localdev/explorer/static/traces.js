// Traces: a filterable list (command, user, guild, error, cold start, min duration); a row opens its trace.
import { api, go } from "/static/common.js";
import { esc, fmtMs, fmtDateTime } from "/static/format.js";

const FILTERS = ["command", "user", "guild", "error", "coldstart", "min_ms"];
const CARRIED = ["from_ms", "to_ms", "max_ms"]; // a heatmap selection, shown as a removable note

function yesNo(name, label, value) {
  const opt = (v, text) => `<option value="${v}" ${value === v ? "selected" : ""}>${text}</option>`;
  return `<label>${label}<select name="${name}">${opt("", "any")}${opt("true", "yes")}${opt("false", "no")}</select></label>`;
}

export function renderTraces(root, params) {
  const q = Object.fromEntries([...FILTERS, ...CARRIED].map((k) => [k, params.get(k) || ""]));
  root.innerHTML = `<form class="card filters" id="filters">
      <label>command<select name="command"><option value="">all</option></select></label>
      <label>user<input name="user" placeholder="name or id" value="${esc(q.user)}"></label>
      <label>guild<input name="guild" placeholder="guild id" value="${esc(q.guild)}"></label>
      ${yesNo("error", "error", q.error)}${yesNo("coldstart", "cold start", q.coldstart)}
      <label>min duration<input name="min_ms" type="number" min="0" step="any" placeholder="ms" value="${esc(q.min_ms)}"></label>
      <button type="reset" class="link">clear</button>
    </form><div id="region"></div><section class="card"><div id="list" class="loading">Loading…</div></section>`;
  const form = root.querySelector("#filters");
  let maxDuration = 1;

  function regionNote() {
    const el = root.querySelector("#region");
    if (!q.from_ms && !q.max_ms) { el.innerHTML = ""; return; }
    el.innerHTML = `<div class="note">Showing a heatmap selection${q.max_ms ? ` up to ${fmtMs(Number(q.max_ms))}` : ""}
      ${q.from_ms ? `from ${fmtDateTime(Number(q.from_ms))}` : ""}${q.to_ms ? ` to ${fmtDateTime(Number(q.to_ms))}` : ""}.
      <button class="link" id="drop-region">show all times</button></div>`;
    el.querySelector("#drop-region").addEventListener("click", () => {
      CARRIED.forEach((k) => { q[k] = ""; });
      sync();
    });
  }

  function row(t) {
    const width = t.duration_ms == null ? 0 : (100 * t.duration_ms) / maxDuration;
    return `<tr data-trace="${t.trace_id}">
      <td class="time">${fmtDateTime(t.start_ms)}</td>
      <td><span class="cmd">${esc(t.command)}</span></td>
      <td class="num dur"><div class="inbar" style="width:${width}%"></div><span>${t.duration_ms == null ? "in flight" : fmtMs(t.duration_ms)}</span></td>
      <td>${esc(t.user || "")}</td>
      <td class="mono small">${esc(t.guild || "")}</td>
      <td>${t.coldstart ? '<span class="badge cold">cold start</span>' : ""}${t.error ? '<span class="badge err">error</span>' : ""}</td>
      <td class="num">${t.spans}</td>
      <td class="mono small"><a data-link href="/trace/${t.trace_id}">${t.trace_id.slice(0, 16)}…</a></td></tr>`;
  }

  async function load() {
    const list = root.querySelector("#list");
    try {
      const res = await api("/api/traces", q);
      const sel = form.elements.command;
      sel.innerHTML = `<option value="">all</option>` + res.commands.map((c) =>
        `<option ${c === q.command ? "selected" : ""}>${esc(c)}</option>`).join("");
      maxDuration = Math.max(1, ...res.traces.map((t) => t.duration_ms || 0));
      list.classList.remove("loading");
      list.innerHTML = !res.total ? `<p class="muted pad">No traces match these filters.</p>` :
        `<div class="count">${res.total} trace${res.total > 1 ? "s" : ""}${res.total > res.limit ? ` (newest ${res.limit} shown)` : ""}, newest first</div>
        <table class="traces"><thead><tr><th>time</th><th>command</th><th class="num">end-to-end</th><th>user</th>
        <th>guild</th><th></th><th class="num">spans</th><th>trace id</th></tr></thead>
        <tbody>${res.traces.map(row).join("")}</tbody></table>`;
    } catch (err) {
      list.innerHTML = `<p class="error pad">${esc(err.message)}</p>`;
    }
  }

  function sync() {
    const qs = new URLSearchParams(Object.entries(q).filter(([, v]) => v));
    history.replaceState(null, "", `/traces${qs.toString() ? `?${qs}` : ""}`);
    regionNote();
    load();
  }

  let typing;
  form.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { FILTERS.forEach((k) => { q[k] = form.elements[k].value.trim(); }); sync(); }, 250);
  });
  form.addEventListener("reset", () => setTimeout(() => {
    [...FILTERS, ...CARRIED].forEach((k) => { q[k] = ""; });
    sync();
  }));
  form.addEventListener("submit", (e) => e.preventDefault());
  root.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-trace]");
    if (tr && !e.target.closest("a")) go(`/trace/${tr.dataset.trace}`);
  });
  regionNote();
  load();
  return { refresh: load };
}
