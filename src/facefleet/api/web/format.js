// How values read on screen: ages, times, numbers, camera states.

export function age(isoTime, now = Date.now()) {
  if (!isoTime) return "never";
  const seconds = Math.max(0, (now - Date.parse(isoTime)) / 1000);
  if (seconds < 1) return "now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function time(isoTime) {
  if (!isoTime) return "";
  return new Date(isoTime).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function number(value, digits = 1) {
  if (value === undefined || value === null || value === "") return "–";
  const n = Number(value);
  return Number.isFinite(n) ? n.toFixed(digits) : String(value);
}

export function duration(fromIso, toIso) {
  const seconds = Math.max(0, (Date.parse(toIso) - Date.parse(fromIso)) / 1000);
  return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}

// A camera's processing state: the control plane's own when it reports one, else what the
// lease says (held by a worker or not).
export function cameraState(camera) {
  if (camera.state) return camera.state;
  if (!camera.enabled) return "disabled";
  return camera.lease && camera.lease.worker_id ? "assigned" : "unassigned";
}

export function cameraHolder(camera) {
  if ("worker_id" in camera && camera.state) return camera.worker_id;
  return camera.lease ? camera.lease.worker_id : null;
}

export function cameraMetrics(camera, workers) {
  const holder = cameraHolder(camera);
  const worker = holder && workers[holder];
  return (worker && worker.metrics && worker.metrics[`camera_${camera.id}`]) || {};
}

export function cameraFps(camera, workers) {
  if (camera.fps !== undefined && camera.fps !== null) return camera.fps;
  const metrics = cameraMetrics(camera, workers);
  return metrics.fps;
}

export function isProcessed(camera) {
  if (!camera.enabled) return true; // nothing to process
  if (camera.state) return camera.state === "streaming";
  return Boolean(camera.lease && camera.lease.worker_id);
}
