// One worker: what it is, what it holds, its history and its commands.

import { html, useCallback, useEffect, useState } from "../vendor/preact-htm.js";
import { api, query } from "../api.js";
import { act, Badge, Labels, useFleet, useNow } from "../components.js";
import { age, number, time } from "../format.js";
import { CameraNames } from "./fleet.js";
import { WorkerActions } from "./workerActions.js";

let commandTypes = null;

// The command types the API accepts, read from its own OpenAPI document.
async function loadCommandTypes() {
  if (commandTypes === null) {
    commandTypes = fetch("/openapi.json")
      .then((r) => r.json())
      .then((doc) => doc.components.schemas.CommandType.enum)
      .catch(() => []);
  }
  return commandTypes;
}

function Metrics({ metrics }) {
  const entries = Object.entries(metrics || {});
  if (entries.length === 0) return html`<p class="muted">No metrics reported yet.</p>`;
  const flat = entries.filter(([, v]) => typeof v !== "object" || v === null);
  const nested = entries.filter(([, v]) => typeof v === "object" && v !== null);
  return html`<dl class="metrics">
      ${flat.map(([k, v]) => html`<dt>${k}</dt><dd>${String(v)}</dd>`)}
    </dl>
    ${nested.map(
      ([k, v]) => html`<h4>${k}</h4>
        <dl class="metrics">${Object.entries(v).map(([kk, vv]) => html`<dt>${kk}</dt><dd>${String(vv)}</dd>`)}</dl>`,
    )}`;
}

function SendCommand({ workerId, onSent }) {
  const [types, setTypes] = useState([]);
  const [type, setType] = useState("");
  const [payload, setPayload] = useState("{}");
  useEffect(() => {
    loadCommandTypes().then((t) => {
      setTypes(t);
      setType(t[0] || "");
    });
  }, []);
  const submit = async (e) => {
    e.preventDefault();
    let body;
    try {
      body = JSON.parse(payload || "{}");
    } catch (err) {
      act(() => Promise.reject(new Error(`the payload is not JSON: ${err.message}`)));
      return;
    }
    const sent = await act(
      () => api.post(`/v1/workers/${encodeURIComponent(workerId)}/commands`, { type, payload: body }),
      (c) => `command ${c.id} (${c.type}) sent`,
    );
    if (sent) onSent();
  };
  return html`<form class="inline" onSubmit=${submit} aria-label="send a command">
    <select value=${type} onChange=${(e) => setType(e.target.value)} name="type">
      ${types.map((t) => html`<option value=${t}>${t}</option>`)}
    </select>
    <input name="payload" value=${payload} onInput=${(e) => setPayload(e.target.value)} placeholder='payload, e.g. {"camera_id": 1}' size="30" />
    <button type="submit" class="primary">Send command</button>
  </form>`;
}

export function WorkerPage({ fleet, workerId }) {
  const state = useFleet(fleet);
  const now = useNow();
  const [detail, setDetail] = useState(null);
  const [commands, setCommands] = useState([]);
  const [error, setError] = useState(null);
  const load = useCallback(async () => {
    try {
      const id = encodeURIComponent(workerId);
      const [d, c] = await Promise.all([
        api.get(`/v1/workers/${id}`),
        api.get(`/v1/workers/${id}/commands${query({ limit: 50 })}`),
      ]);
      setDetail(d);
      setCommands(c.items);
      setError(null);
    } catch (err) {
      setError(err.message);
    }
  }, [workerId]);
  useEffect(() => {
    load();
    let timer = null;
    // Events about this worker refresh its history and commands (coalesced).
    const off = fleet.onEvent((e) => {
      if (e.data && e.data.worker_id === workerId && timer === null) {
        timer = setTimeout(() => {
          timer = null;
          load();
        }, 300);
      }
    });
    return () => {
      off();
      if (timer) clearTimeout(timer);
    };
  }, [fleet, workerId, load]);
  if (error && !detail) return html`<section><h2>${workerId}</h2><p class="error">${error}</p></section>`;
  if (!detail) return html`<section><h2>${workerId}</h2><p class="muted">Loading…</p></section>`;
  const live = { ...detail, ...(state.workers[workerId] || {}) };
  return html`<section class="worker-detail" data-worker-id=${workerId}>
    <header class="page-head">
      <h2><a href="#/fleet">Fleet</a> / ${workerId} <${Badge} value=${live.status} /></h2>
      ${fleet.identity.can_write && html`<${WorkerActions} worker=${live} />`}
    </header>
    <dl class="facts">
      <dt>Host</dt><dd>${live.hostname}</dd>
      <dt>Version</dt><dd>${live.version}</dd>
      <dt>Desired state</dt><dd><${Badge} value=${live.desired_state} /></dd>
      <dt>Capacity</dt><dd>${live.capacity}</dd>
      <dt>Labels</dt><dd><${Labels} labels=${live.labels} /></dd>
      <dt>Registered</dt><dd>${time(live.registered_at)}</dd>
      <dt>Last heartbeat</dt><dd>${age(live.last_seen_at, now)}</dd>
      <dt>FPS</dt><dd>${number(live.metrics && live.metrics.fps)}</dd>
      <dt>Cameras</dt><dd><${CameraNames} held=${live.cameras} cameras=${state.cameras} /></dd>
    </dl>
    <div class="columns">
      <div>
        <h3>History</h3>
        <table class="grid compact" id="history">
          <thead><tr><th>When</th><th>Event</th><th>Camera</th><th>Epoch</th><th>Detail</th></tr></thead>
          <tbody>
            ${detail.history.map(
              (e) => html`<tr>
                <td>${time(e.created_at)}</td><td>${e.kind}</td>
                <td>${e.camera_id === null ? "" : state.cameras[e.camera_id] ? state.cameras[e.camera_id].name : `#${e.camera_id}`}</td>
                <td>${e.epoch === null ? "" : e.epoch}</td>
                <td class="detail">${Object.keys(e.detail).length ? JSON.stringify(e.detail) : ""}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>
      <div>
        <h3>Commands</h3>
        ${fleet.identity.can_write && html`<${SendCommand} workerId=${workerId} onSent=${load} />`}
        ${commands.length === 0
          ? html`<p class="muted">No command sent to this worker.</p>`
          : html`<table class="grid compact" id="commands">
              <thead><tr><th>#</th><th>Type</th><th>Status</th><th>Sent</th><th>Result</th></tr></thead>
              <tbody>
                ${commands.map(
                  (c) => html`<tr data-command-id=${c.id}>
                    <td>${c.id}</td><td>${c.type}</td><td><${Badge} value=${c.status} /></td>
                    <td>${time(c.created_at)}</td>
                    <td class="detail">${c.result ? JSON.stringify(c.result) : ""}</td>
                  </tr>`,
                )}
              </tbody>
            </table>`}
        <h3>Metrics</h3>
        <${Metrics} metrics=${live.metrics} />
      </div>
    </div>
  </section>`;
}
