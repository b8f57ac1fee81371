// Cameras: what each one is doing, who holds it; add, edit, disable, remove.

import { html, useState } from "../vendor/preact-htm.js";
import { api } from "../api.js";
import { act, Badge, confirmAction, Labels, useFleet, useNow } from "../components.js";
import { age, cameraFps, cameraHolder, cameraState, number } from "../format.js";

const splitLabels = (text) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

function CameraForm({ camera, onDone }) {
  const editing = camera !== undefined;
  const [fields, setFields] = useState({
    name: editing ? camera.name : "",
    source_url: editing ? camera.source_url : "",
    target_fps: editing ? String(camera.target_fps) : "5",
    required_labels: editing ? camera.required_labels.join(", ") : "",
    priority: editing ? String(camera.priority) : "0",
    match_threshold: editing && camera.match_threshold !== null ? String(camera.match_threshold) : "",
  });
  const set = (name) => (e) => setFields({ ...fields, [name]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    const body = {
      name: fields.name.trim(),
      source_url: fields.source_url.trim(),
      target_fps: Number(fields.target_fps),
      required_labels: splitLabels(fields.required_labels),
      priority: Number(fields.priority),
      match_threshold: fields.match_threshold === "" ? null : Number(fields.match_threshold),
    };
    let saved;
    if (editing) {
      // Only what changed: the source URL is shown masked and must not be sent back so.
      const changed = {};
      for (const [key, value] of Object.entries(body)) {
        const before = key === "required_labels" ? camera.required_labels : camera[key];
        if (JSON.stringify(before) !== JSON.stringify(value)) changed[key] = value;
      }
      if (changed.match_threshold === null) delete changed.match_threshold;
      saved = await act(() => api.patch(`/v1/cameras/${camera.id}`, changed), `camera ${body.name} saved`);
    } else {
      if (body.match_threshold === null) delete body.match_threshold;
      saved = await act(() => api.post("/v1/cameras", body), (c) => `camera ${c.name} added`);
    }
    if (saved) onDone(saved);
  };
  return html`<form class="card form" onSubmit=${submit} aria-label=${editing ? `edit ${camera.name}` : "add a camera"}>
    <label>Name <input name="name" required value=${fields.name} onInput=${set("name")} /></label>
    <label class="wide">Source URL
      <input name="source_url" required value=${fields.source_url} onInput=${set("source_url")}
        placeholder="rtsp://user:pass@host/stream, file:///path/video.mp4, device://0" /></label>
    <label>Target FPS <input name="target_fps" type="number" min="0.1" max="60" step="0.1" value=${fields.target_fps} onInput=${set("target_fps")} /></label>
    <label>Required labels <input name="required_labels" value=${fields.required_labels} onInput=${set("required_labels")} placeholder="gpu, site-a" /></label>
    <label>Priority <input name="priority" type="number" min="-1000" max="1000" value=${fields.priority} onInput=${set("priority")} /></label>
    <label>Match threshold <input name="match_threshold" type="number" min="0.01" max="2" step="0.01" value=${fields.match_threshold} onInput=${set("match_threshold")} placeholder="tenant default" /></label>
    <div class="actions">
      <button type="button" onClick=${() => onDone(null)}>Cancel</button>
      <button type="submit" class="primary">${editing ? "Save" : "Add camera"}</button>
    </div>
  </form>`;
}

export function CamerasPage({ fleet }) {
  const state = useFleet(fleet);
  const now = useNow();
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState(null);
  const canWrite = fleet.identity.can_write;
  const cameras = Object.values(state.cameras).sort((a, b) => a.name.localeCompare(b.name));
  const done = (saved) => {
    setAdding(false);
    setEditing(null);
    if (saved) fleet.refreshCameras();
  };
  const toggle = async (camera) => {
    const enabling = !camera.enabled;
    const ok =
      enabling ||
      (await confirmAction({
        title: `Disable ${camera.name}?`,
        body: "Its worker stops processing it and no worker takes it until it is enabled again.",
        confirm: "Disable",
      }));
    if (ok && (await act(() => api.patch(`/v1/cameras/${camera.id}`, { enabled: enabling }), `${camera.name} ${enabling ? "enabled" : "disabled"}`))) {
      fleet.refreshCameras();
    }
  };
  const remove = async (camera) => {
    const ok = await confirmAction({
      title: `Remove ${camera.name}?`,
      body: "The camera and its lease are deleted; its sightings are kept.",
      confirm: "Remove",
      danger: true,
    });
    if (ok && (await act(() => api.del(`/v1/cameras/${camera.id}`), `${camera.name} removed`)) !== undefined) {
      fleet.refreshCameras();
    }
  };
  return html`<section>
    <header class="page-head">
      <h2>Cameras</h2>
      ${canWrite && !adding && html`<button type="button" class="primary" onClick=${() => setAdding(true)}>Add camera</button>`}
    </header>
    ${adding && html`<${CameraForm} onDone=${done} />`}
    ${cameras.length === 0
      ? html`<p class="empty">No camera yet.</p>`
      : html`<table class="grid" id="cameras">
          <thead><tr>
            <th>Camera</th><th>State</th><th>Holder</th><th class="num">Epoch</th><th class="num">FPS</th>
            <th>Last error</th><th>Labels</th><th class="num">Priority</th>${canWrite && html`<th>Actions</th>`}
          </tr></thead>
          <tbody>
            ${cameras.map((c) => {
              const holder = cameraHolder(c);
              const camState = cameraState(c);
              return html`<tr data-camera-id=${c.id} data-camera-name=${c.name}>
                  <td>${c.name}<div class="sub" title=${c.source_url}>${c.source_url}</div></td>
                  <td><${Badge} value=${camState} title=${c.state_since ? `since ${age(c.state_since, now)}` : camState} />
                    ${c.state_since && html`<div class="sub">${age(c.state_since, now)}</div>`}</td>
                  <td class="holder">${holder ? html`<a href=${`#/workers/${encodeURIComponent(holder)}`}>${holder}</a>` : html`<span class="muted">–</span>`}</td>
                  <td class="num">${c.lease ? c.lease.epoch : "–"}</td>
                  <td class="num">${number(cameraFps(c, state.workers))}</td>
                  <td class="error-text">${c.last_error || ""}</td>
                  <td><${Labels} labels=${c.required_labels} /></td>
                  <td class="num">${c.priority}</td>
                  ${canWrite &&
                  html`<td><span class="row-actions">
                    <button type="button" onClick=${() => setEditing(c.id)}>Edit</button>
                    <button type="button" onClick=${() => toggle(c)}>${c.enabled ? "Disable" : "Enable"}</button>
                    <button type="button" class="danger" onClick=${() => remove(c)}>Remove</button>
                  </span></td>`}
                </tr>
                ${editing === c.id && html`<tr class="editing"><td colspan="9"><${CameraForm} camera=${c} onDone=${done} /></td></tr>`}`;
            })}
          </tbody>
        </table>`}
  </section>`;
}
