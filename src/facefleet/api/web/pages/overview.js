// Overview: the fleet in numbers, and a live chart of frames and sightings.

import { html } from "../vendor/preact-htm.js";
import { Badge, useFleet } from "../components.js";
import { cameraState, isProcessed, number } from "../format.js";

const STATUSES = ["online", "suspect", "draining", "stopping", "offline", "deregistered"];

function Chart({ series }) {
  const width = 640;
  const height = 160;
  if (series.length < 2) return html`<p class="muted">The chart fills in as samples arrive (every 5 s).</p>`;
  const t0 = series[0].t;
  const span = Math.max(1, series[series.length - 1].t - t0);
  const line = (key) => {
    const top = Math.max(1, ...series.map((p) => p[key]));
    return series
      .map((p) => `${((p.t - t0) / span) * width},${height - (p[key] / top) * (height - 10)}`)
      .join(" ");
  };
  const last = series[series.length - 1];
  return html`<figure class="chart">
    <svg viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" width="100%" height=${height} role="img" aria-label="frames per second and sightings per minute">
      <polyline class="fps" points=${line("fps")} />
      <polyline class="spm" points=${line("spm")} />
    </svg>
    <figcaption>
      <span class="key fps">frames per second, whole fleet: ${number(last.fps)}</span>
      <span class="key spm">sightings per minute: ${last.spm}</span>
      <span class="muted">last ${Math.round(span / 60000) || 1} min, each line scaled to its own peak</span>
    </figcaption>
  </figure>`;
}

export function OverviewPage({ fleet }) {
  const state = useFleet(fleet);
  const workers = Object.values(state.workers);
  const cameras = Object.values(state.cameras);
  const counts = Object.fromEntries(STATUSES.map((s) => [s, workers.filter((w) => w.status === s).length]));
  const waiting = cameras.filter((c) => !isProcessed(c));
  return html`<section>
    <header class="page-head"><h2>Overview</h2></header>
    <div class="tiles">
      <div class="card tile" id="worker-counts">
        <h3>Workers</h3>
        <ul class="counts">
          ${STATUSES.map((s) => html`<li data-status=${s}><${Badge} value=${s} /> <strong>${counts[s]}</strong></li>`)}
        </ul>
      </div>
      <div class="card tile" id="camera-counts">
        <h3>Cameras</h3>
        <p><strong>${cameras.length}</strong> in all, <strong>${cameras.filter((c) => !c.enabled).length}</strong> disabled</p>
        <p><strong class=${waiting.length ? "warn" : ""}>${waiting.length}</strong> not processed</p>
        <ul class="plain">${waiting.map((c) => html`<li>${c.name} <${Badge} value=${cameraState(c)} /></li>`)}</ul>
      </div>
      <div class="card tile">
        <h3>Heartbeats</h3>
        <p><strong>${number(state.heartbeatsPerSecond, 2)}</strong> per second</p>
      </div>
    </div>
    <div class="card"><h3>Live</h3><${Chart} series=${state.series} /></div>
  </section>`;
}
