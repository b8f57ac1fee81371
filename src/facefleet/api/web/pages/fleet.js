// Fleet: every worker, live.

import { html, useState } from "../vendor/preact-htm.js";
import { Badge, Labels, useFleet, useNow } from "../components.js";
import { age, number } from "../format.js";
import { WorkerActions } from "./workerActions.js";

export function CameraNames({ held, cameras }) {
  if (!held || held.length === 0) return html`<span class="muted">none</span>`;
  return html`<span class="labels">
    ${held.map((lease) => {
      const camera = cameras[lease.camera_id];
      return html`<span class="chip camera" title=${`camera ${lease.camera_id}, epoch ${lease.epoch}`}>
        ${camera ? camera.name : `#${lease.camera_id}`}
      </span>`;
    })}
  </span>`;
}

export function FleetPage({ fleet }) {
  const state = useFleet(fleet);
  const now = useNow();
  const [showGone, setShowGone] = useState(false);
  const canWrite = fleet.identity.can_write;
  const workers = Object.values(state.workers)
    .filter((w) => showGone || w.status !== "deregistered")
    .sort((a, b) => a.worker_id.localeCompare(b.worker_id));
  const gone = Object.values(state.workers).filter((w) => w.status === "deregistered").length;
  return html`<section>
    <header class="page-head">
      <h2>Fleet</h2>
      <label class="toggle">
        <input type="checkbox" checked=${showGone} onChange=${(e) => setShowGone(e.target.checked)} />
        show deregistered (${gone})
      </label>
    </header>
    ${workers.length === 0
      ? html`<p class="empty">No worker has registered yet. Start one with <code>facefleet worker</code>.</p>`
      : html`<table class="grid" id="workers">
          <thead>
            <tr>
              <th>Worker</th><th>Status</th><th>Cameras</th><th class="num">FPS</th>
              <th>Last heartbeat</th><th>Labels</th><th>Version</th><th>Desired</th>
              ${canWrite && html`<th>Actions</th>`}
            </tr>
          </thead>
          <tbody>
            ${workers.map(
              (w) => html`<tr data-worker-id=${w.worker_id} class="status-${w.status}">
                <td><a href=${`#/workers/${encodeURIComponent(w.worker_id)}`}>${w.worker_id}</a>
                  <div class="sub">${w.hostname}</div></td>
                <td><${Badge} value=${w.status} /></td>
                <td class="cameras"><${CameraNames} held=${w.cameras} cameras=${state.cameras} /></td>
                <td class="num">${number(w.metrics && w.metrics.fps)}</td>
                <td class="age">${age(w.last_seen_at, now)}</td>
                <td><${Labels} labels=${w.labels} /></td>
                <td>${w.version || "–"}</td>
                <td><${Badge} value=${w.desired_state || "run"} /></td>
                ${canWrite && html`<td><${WorkerActions} worker=${w} /></td>`}
              </tr>`,
            )}
          </tbody>
        </table>`}
  </section>`;
}
