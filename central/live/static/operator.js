// Operator page: all sites at a glance (#/) and one site's seat map (#/site/<id>), kept live
// over Server-Sent Events.
//
// Live protocol (see the API notes): open the EventSource first; on `ready` (and on `resync`)
// fetch a snapshot, buffering events meanwhile; then apply only events with v > snapshot
// version. An event updates the model and marks its one card or tile dirty (found through a
// Map); dirty elements are written once per animation frame, so bursts for 65 sites × 80
// seats stay cheap and nothing is re-rendered wholesale.
//
// How a site's card and the site view's panels are drawn lives in site.js.
// API strings are only ever put into the page with textContent / attributes, never innerHTML.

import { t, bindLangButton, onLangChange, districtName, el, tickRelTimes } from "/static/i18n.js";
import {
  buildCard, fillCard, alertCount, renderAlerts, clearAlerts, renderSeatMap, seatState, fillSeat, renderLegend,
  showSeatInfo, renderDoors, renderGateways, renderDevices, renderAir,
} from "/static/site.js";

const $ = (id) => document.getElementById(id);
const DETAIL_REFRESH_MS = 60_000; // a safety net: refetch the open site now and then

// Batch work that many events in one frame would otherwise repeat (summary, legend).
const pending = new Set();
function schedule(fn) {
  if (pending.size === 0) requestAnimationFrame(flushPending);
  pending.add(fn);
}
function flushPending() {
  const fns = [...pending];
  pending.clear();
  fns.forEach((f) => f());
}

// ---- state ---------------------------------------------------------------------------------

const state = {
  view: { name: "overview" },    // or { name: "site", id }
  sites: new Map(),              // site id -> SiteSummary
  cards: new Map(),              // site id -> card refs (see buildCard)
  detail: null,                  // SiteDetail of the open site (site, layout, devices, alerts)
  seats: new Map(),              // seat id -> Seat   (open site)
  seatEls: new Map(),            // seat id -> tile element
  doors: new Map(),              // door id -> Door   (open site)
  counts: { free: 0, occupied: 0, unknown: 0, fault: 0 },
  mapKey: "",                    // identifies the drawn seat map, to update it in place on refetch
  selectedSeat: null,
  head: null,                    // card refs of the site view header
  snapVersion: null,             // version of the applied snapshot; null while fetching (buffering)
  buffer: [],
};
const stream = { es: null, gen: 0, fetchToken: 0, backoff: 1000, timer: 0 };

// ---- connection ------------------------------------------------------------------------------

const connEl = document.querySelector('[data-role="conn"]');
function setConn(s) {
  connEl.dataset.state = s;
  connEl.querySelector(".conn-text").textContent = t(`conn.${s}`);
}

function streamUrl() {
  return state.view.name === "site"
    ? `/api/v1/events?site=${encodeURIComponent(state.view.id)}`
    : "/api/v1/events?seats=none";
}

function connect() {
  clearTimeout(stream.timer);
  stream.es?.close();
  const gen = ++stream.gen;
  state.snapVersion = null;
  state.buffer = [];
  // While retrying after a drop keep showing "offline" rather than flickering.
  if (connEl.dataset.state !== "offline") setConn("connecting");
  const es = new EventSource(streamUrl());
  stream.es = es;
  let ready = false;
  es.addEventListener("ready", () => { ready = true; if (gen === stream.gen) refetch(); });
  es.addEventListener("resync", () => gen === stream.gen && refetch());
  for (const type of ["site", "seat", "door", "device", "alerts", "air"]) {
    es.addEventListener(type, (ev) => { if (gen === stream.gen) onEvent(type, ev.data); });
  }
  // EventSource would retry by itself, but gives up on HTTP errors and has no backoff: own it.
  es.onerror = () => { if (gen === stream.gen) dropAndRetry(!ready); };
}

async function dropAndRetry(probeAuth = false) {
  stream.es?.close();
  const gen = ++stream.gen;        // ignore anything still in flight for the dropped stream
  setConn("offline");
  // A stream refused before `ready` may be a 401, which EventSource does not expose: ask /healthz.
  if (probeAuth && (await httpStatus("/healthz")) === 401) { if (gen === stream.gen) showAuth(); return; }
  if (gen !== stream.gen) return;
  const delay = stream.backoff * (0.75 + Math.random() * 0.5);
  stream.backoff = Math.min(stream.backoff * 2, 15_000);
  clearTimeout(stream.timer);
  stream.timer = setTimeout(connect, delay);
}

function onEvent(type, raw) {
  let data;
  try { data = JSON.parse(raw); } catch { return; }
  if (state.snapVersion === null) state.buffer.push([type, data]);
  else applyEvent(type, data);
}

function applyEvent(type, data) {
  if (!(data.v > state.snapVersion)) return; // already contained in the snapshot
  if (type === "site") onSite(data.site);
  else if (type === "seat") onSeat(data.site, data.seat);
  else if (type === "door") onDoor(data.site, data.door);
  else if (type === "device") onDevice(data.site, data.device);
  else if (type === "alerts") onAlerts(data.site, data.alerts);
  else if (type === "air") onAir(data.site, data.air);
}

async function httpStatus(url) {
  try { return (await fetch(url, { cache: "no-store" })).status; } catch { return 0; }
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status });
  return res.json();
}

/** Fetch the snapshot for the current view, then replay the events buffered meanwhile. */
async function refetch() {
  const gen = stream.gen;
  const token = ++stream.fetchToken;
  const view = state.view;
  state.snapVersion = null;
  state.buffer = [];
  try {
    const snap = view.name === "site"
      ? await getJSON(`/api/v1/sites/${encodeURIComponent(view.id)}`)
      : await getJSON("/api/v1/sites");
    if (gen !== stream.gen || token !== stream.fetchToken) return; // superseded
    if (view.name === "site") applyDetail(snap); else applySites(snap);
    state.snapVersion = snap.version ?? 0;
    const buffered = state.buffer;
    state.buffer = [];
    for (const [type, data] of buffered) applyEvent(type, data);
    stream.backoff = 1000;
    setConn("live");
  } catch (err) {
    if (gen !== stream.gen || token !== stream.fetchToken) return;
    if (err.status === 401) { stream.es?.close(); stream.gen++; setConn("offline"); showAuth(); return; }
    if (view.name === "site" && err.status === 404) {
      showSiteError("site.notFound");
      state.snapVersion = Infinity; // nothing to update
      setConn("live");
      return;
    }
    if (view.name === "site" && !state.detail) showSiteError("site.loadError", { msg: err.message });
    dropAndRetry();
  }
}

// ---- overview ------------------------------------------------------------------------------

const cardsEl = $("cards");
const districtSel = $("district");
const searchEl = $("search");

function matchesFilter(s) {
  if (districtSel.value && s.district !== districtSel.value) return false;
  const q = searchEl.value.trim().toLowerCase();
  return !q || [s.name, s.name_en, s.id].some((x) => x && x.toLowerCase().includes(q));
}

function upsertCard(s) {
  let c = state.cards.get(s.id);
  if (!c) {
    c = buildCard(true, s.id);
    state.cards.set(s.id, c);
    cardsEl.append(c.root);
    schedule(renderDistricts);
  }
  fillCard(c, s);
  c.root.hidden = !matchesFilter(s);
}

function applySites(snap) {
  const seen = new Set();
  for (const s of snap.sites || []) { seen.add(s.id); state.sites.set(s.id, s); upsertCard(s); }
  for (const [id, c] of state.cards) {
    if (!seen.has(id)) { c.root.remove(); state.cards.delete(id); state.sites.delete(id); }
  }
  // Keep the API's order (appending an existing node moves it).
  for (const s of snap.sites || []) cardsEl.append(state.cards.get(s.id).root);
  renderDistricts();
  applyFilter();
}

function renderDistricts() {
  const chosen = districtSel.value;
  const districts = new Map();
  for (const s of state.sites.values()) if (s.district && !districts.has(s.district)) districts.set(s.district, s);
  districtSel.replaceChildren(el("option", { value: "", text: t("filter.allDistricts") }),
    ...[...districts].map(([d, s]) => el("option", { value: d, text: districtName(s) })));
  districtSel.value = districts.has(chosen) ? chosen : "";
}

function applyFilter() {
  for (const [id, c] of state.cards) c.root.hidden = !matchesFilter(state.sites.get(id));
  renderSummary();
}

function renderSummary() {
  let shown = 0, online = 0, free = 0, open = 0, alerts = 0;
  for (const s of state.sites.values()) {
    if (!matchesFilter(s)) continue;
    shown++;
    if (s.online) online++;
    if (s.open_now) open++;
    free += s.seats?.free || 0;
    alerts += alertCount(s);
  }
  const all = state.sites.size;
  const q = (role) => document.querySelector(`.summary [data-role="${role}"]`);
  q("online").textContent = all ? `${online} / ${shown}` : "—";
  q("free").textContent = all ? String(free) : "—";
  q("open").textContent = all ? String(open) : "—";
  const total = q("alerts-total");
  total.textContent = all ? String(alerts) : "—";
  total.dataset.count = String(all ? alerts : 0);
  q("filtered").textContent = shown < all ? t("summary.filtered", { shown, all }) : "";
  const empty = $("empty");
  empty.hidden = shown > 0;
  empty.textContent = all ? t("empty.filter") : t("loading");
}

districtSel.addEventListener("change", applyFilter);
searchEl.addEventListener("input", applyFilter);

// ---- site view -----------------------------------------------------------------------------

let siteError = null; // [key, params] of the message shown, to re-translate it

function showSiteError(key, params) {
  siteError = [key, params];
  const box = $("site-error");
  box.textContent = t(key, params);
  box.hidden = false;
  $("site-body").hidden = true;
}

function resetSiteView() {
  state.detail = null;
  state.seats.clear(); state.seatEls.clear(); state.doors.clear();
  state.mapKey = ""; state.selectedSeat = null;
  $("seatmap").replaceChildren();
  for (const id of ["legend", "doors", "gateways", "devices", "air"]) $(id).replaceChildren();
  clearAlerts();
  $("site-head").replaceChildren(el("p", { class: "muted", text: t("loading") }));
  $("site-error").hidden = true;
  $("site-body").hidden = false;
  $("seat-info").textContent = t("seat.hint");
}

function applyDetail(d) {
  state.detail = d;
  state.sites.set(d.site.id, d.site);
  state.seats = new Map((d.seats || []).map((s) => [s.id, s]));
  state.doors = new Map((d.doors || []).map((x) => [x.id, x]));
  renderSite();
}

/** (Re)render the whole open site from state; the seat map is rebuilt only if its shape changed. */
function renderSite() {
  const d = state.detail;
  if (!d) return;
  $("site-error").hidden = true;
  $("site-body").hidden = false;
  if (!state.head) state.head = buildCard(false);
  $("site-head").replaceChildren(state.head.root);
  fillCard(state.head, d.site);
  renderAlerts(d.alerts);
  renderSeatMap(state);
  renderDoors(state.doors);
  renderGateways(d.site);
  renderDevices(d.devices);
  renderAir(d.air);
}

$("seatmap").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-seat]");
  if (!b) return;
  state.selectedSeat = state.selectedSeat === b.dataset.seat ? null : b.dataset.seat;
  showSeatInfo(state);
});

// ---- live updates --------------------------------------------------------------------------

// Events only update the model and mark what changed; the DOM is written at most once per
// frame per card / tile, so a burst of events for the same seat costs one DOM update.
const dirtyCards = new Set();
const dirtySeats = new Set();

function flushCards() {
  for (const id of dirtyCards) if (state.sites.has(id)) upsertCard(state.sites.get(id));
  dirtyCards.clear();
  renderSummary();
}

function flushSeats() {
  for (const id of dirtySeats) {
    const b = state.seatEls.get(id);
    if (b) fillSeat(b, state.seats.get(id));
  }
  dirtySeats.clear();
  renderLegend(state.counts);
  showSeatInfo(state);
}

function onSite(s) {
  state.sites.set(s.id, s);
  if (state.view.name === "overview") {
    dirtyCards.add(s.id);
    schedule(flushCards);
  } else if (state.detail && s.id === state.view.id) {
    state.detail.site = s;
    schedule(flushHead);
  }
}

function flushHead() {
  if (!state.detail) return;
  fillCard(state.head, state.detail.site);
  renderGateways(state.detail.site);
}

function onSeat(siteId, seat) {
  if (state.view.name !== "site" || siteId !== state.view.id) return;
  const old = state.seats.get(seat.id);
  const b = state.seatEls.get(seat.id);
  if (!old || !b) return; // not on the drawn map (layout changed): the next refetch redraws it
  state.counts[seatState(old)]--;
  state.counts[seatState(seat)]++;
  state.seats.set(seat.id, seat);
  dirtySeats.add(seat.id);
  schedule(flushSeats);
}

function onDoor(siteId, door) {
  if (state.view.name !== "site" || siteId !== state.view.id) return;
  state.doors.set(door.id, door);
  renderDoors(state.doors); // a site has one or two doors: redrawing the short list is simplest
}

function onDevice(siteId, device) {
  if (state.view.name !== "site" || siteId !== state.view.id || !state.detail) return;
  const devices = (state.detail.devices || []).filter(
    (d) => !(d.id === device.id && d.gateway === device.gateway));
  devices.push(device);
  devices.sort((a, b) => `${a.gateway}/${a.id}`.localeCompare(`${b.gateway}/${b.id}`));
  state.detail.devices = devices;
  renderDevices(devices); // a site has a handful of boards: redrawing the table is simplest
}

/** An air sensor's new view replaces its old one (a site has a few rooms: redraw the list). */
function onAir(siteId, air) {
  if (state.view.name !== "site" || siteId !== state.view.id || !state.detail) return;
  const list = (state.detail.air || []).filter((a) => !(a.id === air.id && a.gateway === air.gateway));
  list.push(air);
  list.sort((a, b) => `${a.gateway}/${a.id}`.localeCompare(`${b.gateway}/${b.id}`));
  state.detail.air = list;
  renderAir(list);
}

/** `alerts` carries the site's complete current list (newest first): it replaces the old one. */
function onAlerts(siteId, alerts) {
  if (state.view.name !== "site" || siteId !== state.view.id || !state.detail) return;
  state.detail.alerts = Array.isArray(alerts) ? alerts : [];
  schedule(flushAlerts);
}

function flushAlerts() {
  if (state.detail) renderAlerts(state.detail.alerts);
}

// ---- operator token ------------------------------------------------------------------------
// The pages themselves are open; with `operator_token` set the API wants a Bearer header or the
// `qihe_operator` cookie. EventSource cannot send headers, so the token goes into the cookie.

const authForm = $("auth");
let authTried = false;

function showAuth() {
  authForm.hidden = false;
  $("auth-wrong").hidden = !authTried;
  $("auth-token").focus();
}

/** Python's cookie unquoting (used by Starlette) understands "quoted" values with octal escapes,
 *  so a token with characters a cookie cannot carry as-is (" , ; \) still arrives intact. */
function cookieValue(tok) {
  if (/^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/.test(tok)) return tok;
  return `"${tok.replace(/["\\,;]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`)}"`;
}

authForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `qihe_operator=${cookieValue($("auth-token").value.trim())}; path=/; max-age=2592000; SameSite=Strict${secure}`;
  authTried = true;
  authForm.hidden = true;
  stream.backoff = 1000;
  connect();
});

// ---- routing -------------------------------------------------------------------------------

let overviewScroll = 0;

function route() {
  const m = location.hash.match(/^#\/site\/(.+)$/);
  const next = m ? { name: "site", id: decodeURIComponent(m[1]) } : { name: "overview" };
  const prev = state.view;
  if (prev.name === next.name && prev.id === next.id && stream.es) return;
  if (prev.name === "overview") overviewScroll = window.scrollY;
  state.view = next;
  $("overview").hidden = next.name !== "overview";
  $("siteview").hidden = next.name !== "site";
  if (next.name === "site") {
    resetSiteView();
    window.scrollTo(0, 0);
  } else {
    requestAnimationFrame(() => window.scrollTo(0, overviewScroll));
  }
  connect();
}

function rerenderForLanguage() {
  setConn(connEl.dataset.state);
  for (const [id, c] of state.cards) fillCard(c, state.sites.get(id));
  renderDistricts();
  renderSummary();
  if (state.view.name === "site") {
    if (state.detail) renderSite();
    else if (!$("site-error").hidden) showSiteError(...siteError);
  }
}

bindLangButton(document.querySelector('[data-role="lang"]'));
onLangChange(rerenderForLanguage);
window.addEventListener("hashchange", route);
setInterval(tickRelTimes, 15_000);
setInterval(() => {
  if (state.view.name === "site" && state.snapVersion !== null && state.snapVersion !== Infinity) refetch();
}, DETAIL_REFRESH_MS);

renderDistricts();
renderSummary();
setConn("connecting");
route();

// Hook for browser tests and benchmarks: apply an event as if it came from the stream.
window.qiheLive = { applyEvent, flush: flushPending, state };
