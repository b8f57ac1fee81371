// The tenant's live state: a snapshot from the WebSocket, then every event applied in order.
// A lost connection resumes from the last sequence number seen; close code 4009 (the
// server cannot replay what was missed) starts again from a fresh snapshot.

import { api, ApiError, session } from "./api.js";

export const LIVE_STATUSES = ["online", "suspect", "draining", "stopping"];
const SIGHTINGS_KEPT = 200;
const SAMPLE_EVERY_MS = 5000;
const SAMPLES_KEPT = 120; // ten minutes of chart
const RETRY_MAX_MS = 10000;
const CLOSE_SLOW_CONSUMER = 4008;
const CLOSE_RESYNC = 4009;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;

const iso = (seconds) => new Date(seconds * 1000).toISOString();
const byKey = (items, key) => Object.fromEntries(items.map((item) => [String(item[key]), item]));

export class Fleet {
  constructor(identity) {
    this.identity = identity;
    this.state = {
      connection: { status: "connecting", seq: null, message: "", attempt: 0, snapshots: 0 },
      workers: {},
      cameras: {},
      heartbeatsPerSecond: 0,
      sightings: [],
      series: [],
    };
    this.listeners = new Set();
    this.eventListeners = new Set();
    this.arrivals = []; // when new sightings arrived, for the per-minute rate
    this.changedAt = new Map(); // camera id -> sequence number of the last event about it
    this.pendingSeq = 0;
    this.socket = null;
    this.stopped = false;
    this.resync = false;
    this.notifyTimer = null;
    this.sampler = setInterval(() => this.sample(), SAMPLE_EVERY_MS);
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // Raw events (after they are applied), for pages that refresh details on change.
  onEvent(fn) {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  update(patch) {
    this.state = { ...this.state, ...patch };
    // Bursts of events cost one render.
    if (this.notifyTimer === null) {
      this.notifyTimer = setTimeout(() => {
        this.notifyTimer = null;
        for (const fn of this.listeners) fn(this.state);
      }, 30);
    }
  }

  setConnection(patch) {
    this.update({ connection: { ...this.state.connection, ...patch } });
  }

  connect() {
    if (this.stopped) return;
    const { seq } = this.state.connection;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const tenant = encodeURIComponent(this.identity.tenant_id);
    let url = `${scheme}//${location.host}/v1/workers/ws/${tenant}`;
    if (!this.resync && seq !== null) url += `?since=${seq}`;
    // The key travels as a subprotocol: never in the URL, so never in an access log.
    const socket = new WebSocket(url, ["facefleet", `facefleet.key.${session.key}`]);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.setConnection({ status: "live", attempt: 0, message: "" });
    };
    socket.onmessage = (message) => this.receive(JSON.parse(message.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.closed(event.code, event.reason, opened);
    };
  }

  closed(code, reason, opened) {
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHORIZED || code === CLOSE_FORBIDDEN) {
      this.setConnection({ status: "unauthorized", message: reason });
      return;
    }
    // Until a snapshot arrives, a resynchronisation stays due, whatever closes next.
    this.resync = this.resync || code === CLOSE_RESYNC;
    const attempt = this.state.connection.attempt + 1;
    const wait = Math.min(RETRY_MAX_MS, 500 * 2 ** (attempt - 1));
    let message;
    if (code === CLOSE_RESYNC) message = "events were missed: a fresh snapshot follows";
    else if (code === CLOSE_SLOW_CONSUMER) message = "this page fell behind the event stream";
    else message = reason || (opened ? "the connection was lost" : "the control plane cannot be reached");
    this.setConnection({
      status: this.resync ? "resyncing" : "reconnecting",
      attempt,
      message,
      retryInMs: wait,
    });
    // A refused upgrade carries no close code: ask the API whether the key still works.
    if (!opened) this.checkKey();
    setTimeout(() => this.connect(), wait);
  }

  async checkKey() {
    try {
      await api.get("/v1/whoami");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.stopped = true;
        this.setConnection({ status: "unauthorized", message: err.message });
      }
    }
  }

  close() {
    this.stopped = true;
    clearInterval(this.sampler);
    if (this.socket) this.socket.close(1000, "signed out");
  }

  receive(message) {
    if (message.type === "snapshot") {
      const data = message.data;
      this.resync = false;
      this.update({
        workers: byKey(data.workers, "worker_id"),
        cameras: byKey(data.cameras, "id"),
        heartbeatsPerSecond: data.stats.heartbeats_per_second,
      });
      this.setConnection({
        status: "live",
        seq: message.seq,
        snapshots: this.state.connection.snapshots + 1,
        lastSnapshotAt: Date.now(),
      });
    } else if (message.type === "event") {
      const seq = this.state.connection.seq;
      if (seq !== null && message.seq <= seq) return; // already applied
      this.pendingSeq = message.seq;
      this.apply(message.kind, message.data, message.ts);
      this.setConnection({ seq: message.seq });
      for (const fn of this.eventListeners) fn(message);
    }
  }

  patchWorker(workerId, patch) {
    const current = this.state.workers[workerId];
    if (current === undefined && !patch.worker_id) return;
    const next = { ...(current || {}), ...patch };
    this.update({ workers: { ...this.state.workers, [workerId]: next } });
  }

  patchCamera(cameraId, patch) {
    this.changedAt.set(Number(cameraId), this.pendingSeq);
    const current = this.state.cameras[cameraId];
    if (current === undefined) {
      this.refreshCameras();
      return;
    }
    this.update({ cameras: { ...this.state.cameras, [cameraId]: { ...current, ...patch } } });
  }

  heldBy(workerId) {
    return (this.state.workers[workerId] && this.state.workers[workerId].cameras) || [];
  }

  apply(kind, d, ts) {
    const worker = this.state.workers[d.worker_id];
    switch (kind) {
      case "registered": {
        this.patchWorker(d.worker_id, {
          worker_id: d.worker_id,
          hostname: d.hostname,
          capacity: d.capacity,
          labels: d.labels,
          status: d.status,
          desired_state: "run",
          last_seen_at: iso(ts),
          metrics: (worker && worker.metrics) || {},
          cameras: d.cameras.map((id) => ({
            camera_id: id,
            epoch: this.state.cameras[id] ? this.state.cameras[id].lease.epoch : 0,
            valid: true,
            expires_in: 0,
          })),
        });
        this.refreshWorker(d.worker_id); // its version and registration time
        break;
      }
      case "status_changed": {
        let desired = worker && worker.desired_state;
        if (d.to === "draining") desired = "drain";
        else if (d.to === "online" && d.from === "draining") desired = "run";
        else if (d.to === "stopping") desired = "stop";
        this.patchWorker(d.worker_id, { status: d.to, desired_state: desired });
        break;
      }
      case "shutdown_signalled":
        this.patchWorker(d.worker_id, { status: "stopping", desired_state: "stop" });
        break;
      case "deregistered":
        this.patchWorker(d.worker_id, { status: "deregistered", cameras: [] });
        break;
      case "camera_assigned": {
        const held = this.heldBy(d.worker_id).filter((c) => c.camera_id !== d.camera_id);
        held.push({ camera_id: d.camera_id, epoch: d.epoch, valid: true, expires_in: 0 });
        this.patchWorker(d.worker_id, { cameras: held });
        this.patchCamera(d.camera_id, {
          lease: { worker_id: d.worker_id, epoch: d.epoch, assigned_at: iso(ts) },
        });
        break;
      }
      case "camera_released": {
        this.patchWorker(d.worker_id, {
          cameras: this.heldBy(d.worker_id).filter((c) => c.camera_id !== d.camera_id),
        });
        const camera = this.state.cameras[d.camera_id];
        if (camera && camera.lease.worker_id === d.worker_id) {
          this.patchCamera(d.camera_id, { lease: { ...camera.lease, worker_id: null } });
        }
        break;
      }
      case "camera_state":
        this.patchCamera(d.camera_id, {
          state: d.state,
          state_since: iso(ts),
          worker_id: d.worker_id,
          fps: d.fps,
          last_error: d.last_error,
        });
        break;
      case "stats": {
        const workers = { ...this.state.workers };
        for (const [id, metrics] of Object.entries(d.metrics || {})) {
          if (workers[id]) workers[id] = { ...workers[id], metrics, last_seen_at: iso(ts) };
        }
        this.update({ workers, heartbeatsPerSecond: d.heartbeats_per_second });
        break;
      }
      case "sighting": {
        const rest = this.state.sightings.filter((s) => s.id !== d.id);
        if (rest.length === this.state.sightings.length) this.arrivals.push(Date.now());
        const sighting = {
          ...d,
          first_seen: iso(d.first_seen),
          last_seen: iso(d.last_seen),
          live: true,
        };
        this.update({ sightings: [sighting, ...rest].slice(0, SIGHTINGS_KEPT) });
        break;
      }
      default:
        break; // commands and gallery changes: pages listening to events refresh themselves
    }
  }

  // What a registration event does not carry. Only those fields are taken: the rest may
  // have changed through events while the request was out.
  async refreshWorker(workerId) {
    try {
      const detail = await api.get(`/v1/workers/${encodeURIComponent(workerId)}`);
      this.patchWorker(workerId, { version: detail.version, registered_at: detail.registered_at });
    } catch {
      // a later event or snapshot brings it
    }
  }

  // The camera list again (after an edit, or an event about an unknown camera). A camera
  // an event changed while the request was out keeps what the event said.
  async refreshCameras() {
    if (this.refreshing) return;
    this.refreshing = true;
    const asked = this.state.connection.seq;
    try {
      const page = await api.get("/v1/cameras?limit=1000");
      const cameras = {};
      for (const camera of page.items) {
        const known = this.state.cameras[camera.id];
        cameras[camera.id] =
          known && (this.changedAt.get(camera.id) || 0) > (asked || 0)
            ? { ...camera, ...known }
            : { ...(known || {}), ...camera };
      }
      this.update({ cameras });
    } catch {
      // kept as they were; the next snapshot corrects them
    } finally {
      this.refreshing = false;
    }
  }

  sample() {
    const now = Date.now();
    this.arrivals = this.arrivals.filter((t) => now - t <= 60000);
    const fps = Object.values(this.state.workers)
      .filter((w) => LIVE_STATUSES.includes(w.status))
      .reduce((sum, w) => sum + Number((w.metrics && w.metrics.fps) || 0), 0);
    const series = [...this.state.series, { t: now, fps, spm: this.arrivals.length }];
    this.update({ series: series.slice(-SAMPLES_KEPT) });
  }
}
