// The control plane's HTTP API, called with the key the operator signed in with.

const KEY = "facefleet.apiKey";

export class ApiError extends Error {
  constructor(status, name, detail, fields) {
    super(detail);
    this.status = status;
    this.name = name;
    this.fields = fields || [];
  }
}

export const session = {
  // sessionStorage: the key lives as long as the tab, never on disk across browser restarts.
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

async function errorOf(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // not JSON: a proxy or a crash answered
  }
  const detail =
    body && typeof body.detail === "string"
      ? body.detail
      : `${resp.status} ${resp.statusText || "error"}`;
  return new ApiError(resp.status, (body && body.error) || "HTTPError", detail, body && body.fields);
}

export async function request(method, path, { json, form, key } = {}) {
  const headers = { Authorization: `Bearer ${key || session.key || ""}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body });
  } catch (err) {
    throw new ApiError(0, "Unreachable", `the control plane cannot be reached (${err.message})`);
  }
  if (!resp.ok) throw await errorOf(resp);
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  return type.includes("application/json") ? resp.json() : resp.blob();
}

export const api = {
  get: (path, opts) => request("GET", path, opts),
  post: (path, json) => request("POST", path, { json }),
  patch: (path, json) => request("PATCH", path, { json }),
  del: (path) => request("DELETE", path),
  upload: (path, files) => {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    return request("POST", path, { form });
  },
};

export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(name, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}
