// The dashboard: sign in with an API key, then the live pages of the tenant's fleet.

import { html, render, useEffect, useState } from "./vendor/preact-htm.js";
import { api, ApiError, session } from "./api.js";
import { ConfirmHost, Notices, useFleet } from "./components.js";
import { Fleet } from "./live.js";
import { CamerasPage } from "./pages/cameras.js";
import { FleetPage } from "./pages/fleet.js";
import { OverviewPage } from "./pages/overview.js";
import { PeoplePage } from "./pages/people.js";
import { SightingsPage } from "./pages/sightings.js";
import { WorkerPage } from "./pages/worker.js";

const PAGES = [
  ["overview", "Overview"],
  ["fleet", "Fleet"],
  ["cameras", "Cameras"],
  ["people", "People"],
  ["sightings", "Sightings"],
];

function useRoute() {
  const read = () => (location.hash.replace(/^#\/?/, "") || "fleet").split("/").map(decodeURIComponent);
  const [route, setRoute] = useState(read());
  useEffect(() => {
    const changed = () => setRoute(read());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

async function identify(key) {
  const me = await api.get("/v1/whoami", { key });
  if (me.role === "worker") {
    throw new ApiError(403, "Forbidden", "a worker key cannot watch the fleet: use an admin or viewer key");
  }
  return me;
}

function SignIn({ onSignedIn, reason }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(reason || null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      const me = await identify(key.trim());
      session.key = key.trim();
      onSignedIn(me);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <form class="card" onSubmit=${submit} aria-label="sign in">
      <h1>facefleet</h1>
      <p>Sign in with an admin key (to steer the fleet) or a viewer key (to watch it). The key
        is kept in this tab only.</p>
      <label>API key <input name="api-key" type="password" autocomplete="off" required value=${key}
        onInput=${(e) => setKey(e.target.value)} placeholder="ff_admin_…" /></label>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      <p class="sub">The default tenant's keys are in <code>data/default-tenant-keys.json</code>.</p>
    </form>
  </main>`;
}

function Connection({ fleet }) {
  const { connection } = useFleet(fleet);
  const labels = {
    connecting: "connecting…",
    live: "live",
    reconnecting: "reconnecting…",
    resyncing: "resynchronising…",
    unauthorized: "signed out",
  };
  return html`<span id="connection" class="connection conn-${connection.status}" data-status=${connection.status}
      data-seq=${connection.seq === null ? "" : connection.seq} data-snapshots=${connection.snapshots}
      title=${connection.message || `event ${connection.seq}`}>
    ● ${labels[connection.status]}
  </span>`;
}

function ConnectionBanner({ fleet }) {
  const { connection } = useFleet(fleet);
  if (connection.status === "live" || connection.status === "connecting") return null;
  if (connection.status === "unauthorized") return null;
  const what = connection.status === "resyncing" ? "Resynchronising" : "Connection lost";
  return html`<div class="banner" id="connection-banner" role="status">
    ${what}: ${connection.message}. Retrying (attempt ${connection.attempt}); the figures shown may be stale.
  </div>`;
}

function Shell({ identity, onSignOut }) {
  const [fleet] = useState(() => new Fleet(identity));
  const state = useFleet(fleet);
  const [page, arg] = useRoute();
  useEffect(() => {
    fleet.connect();
    return () => fleet.close();
  }, [fleet]);
  useEffect(() => {
    if (state.connection.status === "unauthorized") onSignOut(state.connection.message || "the key was refused");
  }, [state.connection.status]);
  let body;
  if (page === "workers" && arg) body = html`<${WorkerPage} fleet=${fleet} workerId=${arg} />`;
  else if (page === "overview") body = html`<${OverviewPage} fleet=${fleet} />`;
  else if (page === "cameras") body = html`<${CamerasPage} fleet=${fleet} />`;
  else if (page === "people") body = html`<${PeoplePage} fleet=${fleet} />`;
  else if (page === "sightings") body = html`<${SightingsPage} fleet=${fleet} />`;
  else body = html`<${FleetPage} fleet=${fleet} />`;
  const current = page === "workers" ? "fleet" : page;
  return html`<div class="shell ${identity.can_write ? "can-write" : "read-only"}">
    <header class="top">
      <h1>facefleet</h1>
      <nav>
        ${PAGES.map(([id, label]) => html`<a href=${`#/${id}`} class=${current === id ? "current" : ""}>${label}</a>`)}
      </nav>
      <span class="who">
        tenant <strong>${identity.tenant_name}</strong>
        <span class="badge role-${identity.role}" id="role">${identity.role}${identity.can_write ? "" : " · read only"}</span>
        <${Connection} fleet=${fleet} />
        <button type="button" class="link" onClick=${() => onSignOut(null)}>Sign out</button>
      </span>
    </header>
    <${ConnectionBanner} fleet=${fleet} />
    <main>${body}</main>
  </div>`;
}

function App() {
  const [identity, setIdentity] = useState(null);
  const [reason, setReason] = useState(null);
  const [checking, setChecking] = useState(Boolean(session.key));
  useEffect(() => {
    if (!session.key) return;
    identify(session.key).then(
      (me) => setIdentity(me),
      (err) => {
        if (err.status === 401 || err.status === 403) session.key = null;
        setReason(err.message);
      },
    ).finally(() => setChecking(false));
  }, []);
  const signOut = (why) => {
    session.key = null;
    setIdentity(null);
    setReason(why);
  };
  if (checking) return html`<p class="boot">Signing in…</p>`;
  return html`<${Notices} /><${ConfirmHost} />
    ${identity
      ? html`<${Shell} identity=${identity} onSignOut=${signOut} />`
      : html`<${SignIn} reason=${reason} onSignedIn=${(me) => {
          setReason(null);
          setIdentity(me);
        }} />`}`;
}

const root = document.getElementById("app");
root.textContent = ""; // the loading note
render(html`<${App} />`, root);
