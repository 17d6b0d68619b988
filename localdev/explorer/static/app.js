// The explorer's shell: routing (/, /traces, /trace/<id>), the live status and API calls.
import { renderOverview } from "/static/overview.js";
import { renderTraces } from "/static/traces.js";
import { renderTrace } from "/static/trace.js";
import { esc } from "/static/format.js";
import { api, go } from "/static/common.js";

window.explorerLoaded = true;
const main = document.getElementById("main");
const live = document.getElementById("live");
let lastVersion = null;
let current = null; // the page on screen: { refresh() } or null

function route() {
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.nav === (path.startsWith("/trace") ? "traces" : "overview"));
  }
  window.scrollTo(0, 0);
  main.innerHTML = "";
  if (path.startsWith("/trace/")) current = renderTrace(main, decodeURIComponent(path.slice(7)));
  else if (path === "/traces") current = renderTraces(main, params);
  else current = renderOverview(main, params);
}

async function poll() {
  try {
    const s = await api("/api/status");
    const skipped = s.skipped_lines ? ` · <span class="warn" title="lines in ${esc(s.file)} that are not spans (torn or malformed); skipped">${s.skipped_lines} malformed line${s.skipped_lines > 1 ? "s" : ""} skipped</span>` : "";
    live.innerHTML = `<span class="dot"></span>live · ${s.traces} traces · ${s.spans} spans${skipped}`;
    live.title = `following ${s.file}`;
    live.classList.remove("down");
    if (lastVersion !== null && s.version !== lastVersion && current && current.refresh) current.refresh();
    lastVersion = s.version;
  } catch {
    live.innerHTML = `<span class="dot"></span>explorer not reachable`;
    live.classList.add("down");
  }
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
document.getElementById("jump").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = e.target.elements.id.value.trim().replace(/[`'"]/g, "");
  if (id) go(`/trace/${encodeURIComponent(id)}`);
});
window.addEventListener("popstate", route);
window.addEventListener("explorer:navigate", route);
route();
poll();
setInterval(poll, 1500);
