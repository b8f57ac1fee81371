// Sightings: who was seen where, live, with filters by person, camera, time and unknown.

import { html, useCallback, useEffect, useMemo, useState } from "../vendor/preact-htm.js";
import { api, query } from "../api.js";
import { AuthImage, useFleet } from "../components.js";
import { duration, number, time } from "../format.js";

const PAGE = 100;

function localToIso(value) {
  return value ? new Date(value).toISOString() : "";
}

function matches(filter, s) {
  if (filter.person && String(s.person_id) !== filter.person) return false;
  if (filter.camera && String(s.camera_id) !== filter.camera) return false;
  if (filter.unknown && s.known) return false;
  if (filter.since && Date.parse(s.last_seen) < Date.parse(filter.since)) return false;
  if (filter.until && Date.parse(s.first_seen) > Date.parse(filter.until)) return false;
  return true;
}

export function SightingsPage({ fleet }) {
  const state = useFleet(fleet);
  const [filter, setFilter] = useState({ person: "", camera: "", unknown: false, since: "", until: "" });
  const [loaded, setLoaded] = useState({ items: [], total: 0, at: 0 });
  const [people, setPeople] = useState({});
  const [error, setError] = useState(null);

  const loadPeople = useCallback(() => {
    api.get("/v1/people?limit=1000").then(
      (page) => setPeople(Object.fromEntries(page.items.map((p) => [p.id, p.name]))),
      () => {},
    );
  }, []);
  useEffect(() => {
    loadPeople();
    return fleet.onEvent((e) => e.kind === "gallery_changed" && loadPeople());
  }, [fleet, loadPeople]);

  useEffect(() => {
    const params = {
      person_id: filter.person || undefined,
      camera_id: filter.camera || undefined,
      known: filter.unknown ? "false" : undefined,
      since: filter.since || undefined,
      until: filter.until || undefined,
      limit: PAGE,
    };
    let current = true; // an answer to an older filter is dropped
    api.get(`/v1/sightings${query(params)}`).then(
      (page) => {
        if (!current) return;
        setLoaded({ items: page.items, total: page.total, at: Date.now() });
        setError(null);
      },
      (err) => current && setError(err.message),
    );
    return () => {
      current = false;
    };
  }, [filter]);

  // The loaded page, with what arrived live since on top (and updates of listed tracks).
  const items = useMemo(() => {
    // Filtered here too: until the new page arrives, the last one is shown filtered.
    const byId = new Map(loaded.items.filter((s) => matches(filter, s)).map((s) => [s.id, s]));
    for (const s of state.sightings) {
      if (!matches(filter, s)) continue;
      const before = byId.get(s.id);
      byId.set(s.id, { ...(before || {}), ...s, crop_url: before ? before.crop_url : `/v1/sightings/${s.id}/crop` });
    }
    return [...byId.values()]
      .sort((a, b) => Date.parse(b.first_seen) - Date.parse(a.first_seen) || b.id - a.id)
      .slice(0, PAGE);
  }, [loaded, state.sightings, filter]);

  const set = (name) => (e) =>
    setFilter({ ...filter, [name]: e.target.type === "checkbox" ? e.target.checked : e.target.value });
  const setTime = (name) => (e) => setFilter({ ...filter, [name]: localToIso(e.target.value) });
  const cameras = Object.values(state.cameras).sort((a, b) => a.name.localeCompare(b.name));
  const personName = (s) => s.person_name || people[s.person_id] || (s.person_id ? `person ${s.person_id}` : null);
  const cameraName = (s) => (state.cameras[s.camera_id] ? state.cameras[s.camera_id].name : s.camera_name || `camera ${s.camera_id}`);

  return html`<section>
    <header class="page-head"><h2>Sightings</h2><span class="muted">${loaded.total} matching stored; live updates on top</span></header>
    <form class="filters" onSubmit=${(e) => e.preventDefault()} aria-label="filter sightings">
      <label>Person
        <select name="person" value=${filter.person} onChange=${set("person")}>
          <option value="">anyone</option>
          ${Object.entries(people)
            .sort((a, b) => a[1].localeCompare(b[1]))
            .map(([id, name]) => html`<option value=${id}>${name}</option>`)}
        </select></label>
      <label>Camera
        <select name="camera" value=${filter.camera} onChange=${set("camera")}>
          <option value="">any camera</option>
          ${cameras.map((c) => html`<option value=${String(c.id)}>${c.name}</option>`)}
        </select></label>
      <label>From <input type="datetime-local" name="since" onChange=${setTime("since")} /></label>
      <label>To <input type="datetime-local" name="until" onChange=${setTime("until")} /></label>
      <label class="toggle"><input type="checkbox" name="unknown" checked=${filter.unknown} onChange=${set("unknown")} /> unknown faces only</label>
    </form>
    ${error && html`<p class="error">${error}</p>`}
    ${items.length === 0
      ? html`<p class="empty">No sighting${filter.person || filter.camera || filter.unknown || filter.since || filter.until ? " matches these filters" : " yet"}.</p>`
      : html`<ol class="feed" id="sightings">
          ${items.map((s) => {
            const name = personName(s);
            return html`<li class="sighting card ${s.known ? "known" : "unknown"}" data-sighting-id=${s.id} data-person=${name || ""}>
              ${s.crop_url ? html`<${AuthImage} src=${s.crop_url} alt=${name || "unknown face"} className="crop" />` : html`<span class="img-placeholder crop">no crop</span>`}
              <div>
                <strong class="who">${name || "unknown"}</strong>
                <div>${cameraName(s)} · ${time(s.first_seen)} · for ${duration(s.first_seen, s.last_seen)}</div>
                <div class="sub">${s.frames} frames${s.best_distance !== null && s.best_distance !== undefined ? ` · distance ${number(s.best_distance, 2)}` : ""}${s.worker_id ? ` · ${s.worker_id}` : ""}${s.live ? " · live" : ""}</div>
              </div>
            </li>`;
          })}
        </ol>`}
  </section>`;
}
