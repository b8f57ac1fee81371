// Drain, undrain and shutdown: each asks for confirmation, the API has the last word.

import { html } from "../vendor/preact-htm.js";
import { api } from "../api.js";
import { act, confirmAction } from "../components.js";

const path = (workerId, action) => `/v1/workers/${encodeURIComponent(workerId)}/${action}`;

async function drain(worker) {
  const held = (worker.cameras || []).length;
  const ok = await confirmAction({
    title: `Drain ${worker.worker_id}?`,
    body: `It takes no new cameras and hands its ${held} camera(s) to other workers one by one.`,
    confirm: "Drain",
  });
  if (ok) await act(() => api.post(path(worker.worker_id, "drain")), `${worker.worker_id} is draining`);
}

async function undrain(worker) {
  const ok = await confirmAction({
    title: `Undrain ${worker.worker_id}?`,
    body: "It takes cameras again.",
    confirm: "Undrain",
  });
  if (ok) await act(() => api.post(path(worker.worker_id, "undrain")), `${worker.worker_id} takes cameras again`);
}

async function shutdown(worker) {
  const ok = await confirmAction({
    title: `Shut ${worker.worker_id} down?`,
    body: "The worker stops its streams, gives its cameras back and exits. It does not come back by itself.",
    confirm: "Shut down",
    danger: true,
  });
  if (ok) {
    await act(
      () => api.post(path(worker.worker_id, "shutdown/signal"), { mode: "graceful", reason: "requested from the dashboard" }),
      `${worker.worker_id} is shutting down`,
    );
  }
}

export function WorkerActions({ worker }) {
  const s = worker.status;
  return html`<span class="row-actions">
    ${(s === "online" || s === "suspect") && html`<button type="button" onClick=${() => drain(worker)}>Drain</button>`}
    ${s === "draining" && html`<button type="button" onClick=${() => undrain(worker)}>Undrain</button>`}
    ${["online", "suspect", "draining"].includes(s) &&
    html`<button type="button" class="danger" onClick=${() => shutdown(worker)}>Shutdown</button>`}
  </span>`;
}
