// What every page uses: the JSON API, navigation, the empty state.
import { esc } from "/static/format.js";

export async function api(path, params = {}) {
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
  const res = await fetch(`${path}${qs.toString() ? `?${qs}` : ""}`);
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw Object.assign(new Error(body.error || `HTTP ${res.status}`), { status: res.status });
  return body;
}

export function go(url) {
  history.pushState(null, "", url);
  window.dispatchEvent(new Event("explorer:navigate"));
}

export function emptyState(status) {
  const missing = !status.file_exists;
  return `<div class="card empty">
    <h2>No traces yet</h2>
    <p>This page shows the spans the bot writes to <code>${esc(status.file)}</code>${missing ? " (not created yet)" : ""}.
       It follows the file live: new commands appear here within a second.</p>
    <ol>
      <li>Run the whole bot locally: <code>./scripts/run</code></li>
      <li>At the <code>you&gt;</code> prompt type a few commands: <code>!ping</code>, <code>!catfact</code>,
          <code>!mtg atraxa</code>, <code>/roll dice:3</code></li>
      <li>Watch them land in the heatmap, then click one to see its trace.</li>
    </ol>
  </div>`;
}

