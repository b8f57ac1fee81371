// Shared pieces of the dashboard: badges, the confirmation dialog, notices, authorised images.

import { html, useEffect, useRef, useState } from "./vendor/preact-htm.js";
import { request } from "./api.js";

export function Badge({ value, title }) {
  return html`<span class="badge state-${value}" title=${title || value}>${value}</span>`;
}

export function Labels({ labels }) {
  if (!labels || labels.length === 0) return html`<span class="muted">–</span>`;
  return html`<span class="labels">${labels.map((l) => html`<span class="chip">${l}</span>`)}</span>`;
}

// --- notices -------------------------------------------------------------------------------

const noticeListeners = new Set();
let notices = [];
let noticeId = 0;

export function notify(text, kind = "info") {
  const id = ++noticeId;
  notices = [...notices, { id, text, kind }];
  noticeListeners.forEach((fn) => fn(notices));
  setTimeout(() => {
    notices = notices.filter((n) => n.id !== id);
    noticeListeners.forEach((fn) => fn(notices));
  }, kind === "error" ? 12000 : 5000);
}

export function Notices() {
  const [items, setItems] = useState(notices);
  useEffect(() => {
    noticeListeners.add(setItems);
    return () => noticeListeners.delete(setItems);
  }, []);
  return html`<div class="notices" aria-live="polite">
    ${items.map((n) => html`<div class="notice ${n.kind}" role=${n.kind === "error" ? "alert" : "status"}>${n.text}</div>`)}
  </div>`;
}

// Runs an API action, reporting its outcome; errors show the API's own message.
export async function act(action, done) {
  try {
    const result = await action();
    if (done) notify(typeof done === "function" ? done(result) : done, "ok");
    return result;
  } catch (err) {
    notify(err.message, "error");
    return undefined;
  }
}

// --- confirmation ----------------------------------------------------------------------------

let openConfirm = null;

export function confirmAction({ title, body, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => openConfirm({ title, body, confirm, danger, resolve }));
}

export function ConfirmHost() {
  const [ask, setAsk] = useState(null);
  const dialog = useRef(null);
  useEffect(() => {
    openConfirm = setAsk;
    return () => {
      openConfirm = null;
    };
  }, []);
  useEffect(() => {
    if (ask && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [ask]);
  const answer = (yes) => {
    if (dialog.current && dialog.current.open) dialog.current.close();
    if (ask) ask.resolve(yes);
    setAsk(null);
  };
  return html`<dialog ref=${dialog} class="confirm" onCancel=${() => answer(false)}>
    ${ask &&
    html`<h3>${ask.title}</h3>
      <p>${ask.body}</p>
      <div class="actions">
        <button type="button" onClick=${() => answer(false)}>Cancel</button>
        <button type="button" class=${ask.danger ? "danger" : "primary"} onClick=${() => answer(true)}>
          ${ask.confirm}
        </button>
      </div>`}
  </dialog>`;
}

// --- images behind the API key ---------------------------------------------------------------

const imageCache = new Map();

function loadImage(src) {
  if (!imageCache.has(src)) {
    const promise = request("GET", src).then((blob) => URL.createObjectURL(blob));
    promise.catch(() => imageCache.delete(src));
    imageCache.set(src, promise);
  }
  return imageCache.get(src);
}

// An <img> whose bytes need the Authorization header (thumbnails, sighting crops).
export function AuthImage({ src, alt, className }) {
  const [url, setUrl] = useState(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let alive = true;
    setFailed(false);
    loadImage(src).then(
      (u) => alive && setUrl(u),
      () => alive && setFailed(true),
    );
    return () => {
      alive = false;
    };
  }, [src]);
  if (failed || !url) return html`<span class="img-placeholder ${className || ""}" title=${alt}>${failed ? "no image" : ""}</span>`;
  return html`<img class=${className || ""} src=${url} alt=${alt} />`;
}

export function useNow(periodMs = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(timer);
  }, [periodMs]);
  return now;
}

export function useFleet(fleet) {
  const [state, setState] = useState(fleet.state);
  useEffect(() => {
    setState(fleet.state);
    return fleet.subscribe(setState);
  }, [fleet]);
  return state;
}
