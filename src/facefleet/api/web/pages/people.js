// People: the gallery with thumbnails; enroll by dropping photos (or choosing them), each
// photo on its own so every refused one is shown with the API's reason.

import { html, useCallback, useEffect, useState } from "../vendor/preact-htm.js";
import { api, query } from "../api.js";
import { act, AuthImage, confirmAction, notify } from "../components.js";

// Uploads photos one by one; returns what was accepted and what was refused, and why.
async function enrollPhotos(personId, files) {
  const accepted = [];
  const refused = [];
  for (const file of files) {
    try {
      const result = await api.upload(`/v1/people/${personId}/faces`, [file]);
      accepted.push({ file: file.name, faces: result.faces });
    } catch (err) {
      // The API names the file first; the list names it already.
      const reason = err.message.startsWith(`${file.name}: `) ? err.message.slice(file.name.length + 2) : err.message;
      refused.push({ file: file.name, reason });
    }
  }
  return { accepted, refused };
}

function DropZone({ onFiles, label, name }) {
  const [over, setOver] = useState(false);
  const drop = (e) => {
    e.preventDefault();
    setOver(false);
    const files = [...e.dataTransfer.files];
    if (files.length) onFiles(files);
  };
  return html`<label class="dropzone ${over ? "over" : ""}"
      onDragOver=${(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave=${() => setOver(false)}
      onDrop=${drop}>
    <span>${label}</span>
    <input type="file" name=${name} accept="image/*" multiple
      onChange=${(e) => {
        const files = [...e.target.files];
        e.target.value = "";
        if (files.length) onFiles(files);
      }} />
  </label>`;
}

function Outcome({ outcome }) {
  if (!outcome) return null;
  return html`<div class="outcome" id="enroll-outcome">
    ${outcome.accepted.length > 0 &&
    html`<p class="ok">Enrolled ${outcome.accepted.length} photo(s) of ${outcome.person}: ${outcome.accepted.map((a) => a.file).join(", ")}</p>`}
    ${outcome.refused.length > 0 &&
    html`<div class="refused"><p>Refused ${outcome.refused.length} photo(s):</p>
      <ul>${outcome.refused.map((r) => html`<li data-file=${r.file}><strong>${r.file}</strong>: ${r.reason}</li>`)}</ul></div>`}
  </div>`;
}

function EnrollPanel({ onEnrolled }) {
  const [name, setName] = useState("");
  const [outcome, setOutcome] = useState(null);
  const [busy, setBusy] = useState(false);
  const enroll = async (files) => {
    const person = name.trim();
    if (!person) {
      notify("type the person's name first", "error");
      return;
    }
    setBusy(true);
    try {
      const created = await act(() => api.post("/v1/people", { name: person }));
      if (!created) return;
      const result = await enrollPhotos(created.id, files);
      if (result.accepted.length === 0) {
        // Nothing usable: leave no empty person behind.
        await act(() => api.del(`/v1/people/${created.id}`));
      } else {
        setName("");
      }
      setOutcome({ person, ...result });
      onEnrolled();
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="card enroll" aria-busy=${busy}>
    <h3>Enroll a person</h3>
    <label>Name <input name="person-name" value=${name} onInput=${(e) => setName(e.target.value)} placeholder="Ada Lovelace" /></label>
    <${DropZone} name="enroll-photos" onFiles=${enroll}
      label=${busy ? "Enrolling…" : "Drop face photos here, or click to choose (one face per photo)"} />
    <${Outcome} outcome=${outcome} />
  </div>`;
}

function PersonRow({ person, canWrite, onChanged }) {
  const [detail, setDetail] = useState(null);
  const [outcome, setOutcome] = useState(null);
  const load = useCallback(() => {
    api.get(`/v1/people/${person.id}`).then(setDetail, () => setDetail(null));
  }, [person.id]);
  useEffect(load, [load, person.face_count]);
  const addPhotos = async (files) => {
    setOutcome({ person: person.name, ...(await enrollPhotos(person.id, files)) });
    onChanged();
  };
  const removeFace = async (face) => {
    const ok = await confirmAction({
      title: `Remove this face of ${person.name}?`,
      body: `The photo ${face.source_name} no longer counts for recognition.`,
      confirm: "Remove face",
      danger: true,
    });
    if (ok && (await act(() => api.del(`/v1/people/${person.id}/faces/${face.id}`), "face removed")) !== undefined) onChanged();
  };
  const removePerson = async () => {
    const ok = await confirmAction({
      title: `Remove ${person.name}?`,
      body: "Every face of this person is deleted; past sightings stay, without a name.",
      confirm: "Remove person",
      danger: true,
    });
    if (ok && (await act(() => api.del(`/v1/people/${person.id}`), `${person.name} removed`)) !== undefined) onChanged();
  };
  return html`<li class="person card" data-person-id=${person.id} data-person-name=${person.name}>
    <div class="person-head">
      <strong>${person.name}</strong>
      <span class="muted">${person.face_count} face(s)</span>
      ${canWrite && html`<button type="button" class="danger small" onClick=${removePerson}>Remove person</button>`}
    </div>
    <div class="faces">
      ${detail &&
      detail.faces.map(
        (face) => html`<figure class="face" data-face-id=${face.id}>
          <${AuthImage} src=${face.thumbnail_url || `/v1/people/faces/${face.id}/thumbnail`} alt=${`${person.name} (${face.source_name})`} className="thumb" />
          <figcaption title=${face.source_name}>${face.source_name}</figcaption>
          ${canWrite && html`<button type="button" class="remove-face" title="Remove this face" aria-label="Remove this face" onClick=${() => removeFace(face)}>×</button>`}
        </figure>`,
      )}
      ${canWrite && html`<${DropZone} name=${`photos-${person.id}`} onFiles=${addPhotos} label="+ photos" />`}
    </div>
    <${Outcome} outcome=${outcome} />
  </li>`;
}

export function PeoplePage({ fleet }) {
  const [people, setPeople] = useState(null);
  const [filter, setFilter] = useState("");
  const [error, setError] = useState(null);
  const canWrite = fleet.identity.can_write;
  const load = useCallback(() => {
    api.get(`/v1/people${query({ q: filter, limit: 1000 })}`).then(
      (page) => {
        setPeople(page.items);
        setError(null);
      },
      (err) => setError(err.message),
    );
  }, [filter]);
  useEffect(() => {
    load();
    return fleet.onEvent((e) => e.kind === "gallery_changed" && load());
  }, [fleet, load]);
  return html`<section>
    <header class="page-head">
      <h2>People</h2>
      <input type="search" placeholder="Filter by name" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
    </header>
    ${canWrite && html`<${EnrollPanel} onEnrolled=${load} />`}
    ${error && html`<p class="error">${error}</p>`}
    ${people && people.length === 0 && html`<p class="empty">Nobody is enrolled${filter ? " under that name" : ""}.</p>`}
    <ul class="people">
      ${(people || []).map((p) => html`<${PersonRow} key=${p.id} person=${p} canWrite=${canWrite} onChanged=${load} />`)}
    </ul>
  </section>`;
}
