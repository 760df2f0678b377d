// Operator page: all sites at a glance (#/) and one site's seat map (#/site/<id>), kept live
// over Server-Sent Events.
//
// Live protocol (see the API notes): open the EventSource first; on `ready` (and on `resync`)
// fetch a snapshot, buffering events meanwhile; then apply only events with v > snapshot
// version. An event updates the model and marks its one card or tile dirty (found through a
// Map); dirty elements are written once per animation frame, so bursts for 65 sites × 80
// seats stay cheap and nothing is re-rendered wholesale.
//
// API strings are only ever put into the page with textContent / attributes, never innerHTML.

import {
  t, tCode, bindLangButton, onLangChange, siteName, districtName, fmtTime, fmtFull, el, setRel, tickRelTimes,
} from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const SEAT_STATES = ["free", "occupied", "unknown", "fault"];
const GLYPH = { free: "✓", occupied: "●", unknown: "?", fault: "⚠" };
const SUPPLY_LOW_MV = 3400; // the sensor boards raise SUPPLY_LOW below this (emulator profile)
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
  detail: null,                  // SiteDetail of the open site (site, layout, devices)
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
  for (const type of ["site", "seat", "door", "device"]) {
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

function buildCard(link, id) {
  const c = {
    root: link ? el("a", { class: "card", href: `#/site/${encodeURIComponent(id)}`, data: { site: id } })
      : el("div", { class: "card", data: { role: "site-head" } }),
    name: el("h2"), sub: el("div", { class: "sub" }), addr: link ? null : el("div", { class: "sub" }),
    gw: el("span", { class: "badge", data: { role: "gateway" } }),
    free: el("span", { class: "free num", data: { role: "free" } }),
    total: el("span", { class: "total num" }), freeLbl: el("span", { class: "muted" }),
    occ: el("span", { class: "occ num" }),
    bar: el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }),
    barFill: el("span"),
    open: el("span", { class: "badge", data: { role: "open" } }),
    door: el("span", { class: "badge door", data: { role: "door" } }),
    inside: el("span", { class: "badge plain", data: { role: "inside" } }),
    issues: el("span", { class: "issues" }),
    seen: el("span", { data: { role: "last-seen" } }),
  };
  c.bar.append(c.barFill);
  c.root.append(
    el("div", { class: "card-head" }, el("div", {}, c.name, c.sub, ...(c.addr ? [c.addr] : [])), c.gw),
    el("div", { class: "card-nums" }, c.free, c.total, c.freeLbl, c.occ),
    c.bar,
    el("div", { class: "card-tags" }, c.open, c.door, c.inside),
    el("div", { class: "card-foot" }, c.issues, c.seen),
  );
  return c;
}

/** Worst gateway state of a site: offline > silent > unknown > online. */
function gatewayState(s) {
  const gws = s.gateways || [];
  if (!gws.length) return "unknown";
  return ["offline", "silent", "unknown"].find((st) => gws.some((g) => g.state === st)) || "online";
}

function fillCard(c, s) {
  const seats = s.seats || {};
  const gw = gatewayState(s);
  c.root.dataset.gw = gw;
  c.name.textContent = siteName(s);
  c.sub.textContent = [districtName(s), s.kind && s.kind !== "book_house" ? tCode("kind", s.kind) : null]
    .filter(Boolean).join(" · ");
  if (c.addr) c.addr.textContent = s.address || "";
  c.gw.dataset.state = gw;
  c.gw.textContent = (s.gateways || []).length ? t(`gw.${gw}`) : t("gw.none");
  c.gw.title = (s.gateways || []).map((g) => `${g.id}: ${tCode("gwstate", g.state)}`).join("\n");

  c.free.textContent = seats.free ?? "—";
  c.free.classList.toggle("zero", seats.free === 0 && s.occupancy != null);
  c.free.classList.toggle("nodata", s.occupancy == null); // no seat known: the count means little
  c.total.textContent = t("card.ofTotal", { total: seats.total ?? "—" });
  c.freeLbl.textContent = t("card.free");
  const occ = typeof s.occupancy === "number" ? Math.round(s.occupancy * 100) : null;
  c.occ.textContent = occ === null ? t("card.occupancyNone") : t("card.occupancy", { pct: `${occ}%` });
  c.bar.dataset.level = occ === null ? "none" : occ >= 90 ? "high" : occ >= 70 ? "mid" : "low";
  c.barFill.style.width = `${occ ?? 0}%`;
  if (occ === null) c.bar.removeAttribute("aria-valuenow"); else c.bar.setAttribute("aria-valuenow", occ);
  c.bar.setAttribute("aria-label", c.occ.textContent);

  c.open.dataset.state = s.open_now ? "open-now" : "closed-now";
  const hours = s.hours_today ? t("hours.today", { hours: s.hours_today }) : t("hours.closedToday");
  c.open.textContent = `${t(s.open_now ? "open.now" : "open.closed")} · ${hours}`;
  c.door.hidden = s.door == null;
  if (s.door != null) { c.door.dataset.state = s.door; c.door.textContent = tCode("door", s.door); }
  c.inside.hidden = s.people_inside == null;
  if (s.people_inside != null) c.inside.textContent = t("card.inside", { n: s.people_inside });
  c.issues.textContent = [seats.unknown ? t("card.unknownSeats", { n: seats.unknown }) : "",
    seats.fault ? `⚠ ${t("card.faultSeats", { n: seats.fault })}` : ""].filter(Boolean).join(" · ");
  if (s.last_seen) setRel(c.seen, s.last_seen, "card.lastSeen");
  else { delete c.seen.dataset.ts; c.seen.textContent = t("card.neverSeen"); }
}

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
  let shown = 0, online = 0, free = 0, open = 0;
  for (const s of state.sites.values()) {
    if (!matchesFilter(s)) continue;
    shown++;
    if (s.online) online++;
    if (s.open_now) open++;
    free += s.seats?.free || 0;
  }
  const all = state.sites.size;
  const q = (role) => document.querySelector(`.summary [data-role="${role}"]`);
  q("online").textContent = all ? `${online} / ${shown}` : "—";
  q("free").textContent = all ? String(free) : "—";
  q("open").textContent = all ? String(open) : "—";
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
  for (const id of ["legend", "doors", "gateways", "devices"]) $(id).replaceChildren();
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
  renderSeatMap();
  renderDoors();
  renderGateways(d.site);
  renderDevices();
}

function renderSeatMap() {
  const d = state.detail;
  const seats = [...state.seats.values()];
  const { rows, cols } = d.layout || {};
  const mode = rows && cols ? "grid" : seats.length && seats.every((s) => s.x != null && s.y != null) ? "free" : "auto";
  const key = [d.site.id, mode, rows, cols, ...seats.map((s) => s.id)].join("|");
  const map = $("seatmap");
  if (key !== state.mapKey) {
    state.mapKey = key;
    state.seatEls.clear();
    map.className = mode === "free" ? "seatmap free-layout" : "seatmap";
    map.style.gridTemplateColumns = mode === "grid" ? `repeat(${cols}, minmax(2.4rem, 4.5rem))`
      : mode === "auto" ? "repeat(auto-fill, minmax(2.8rem, 4.5rem))" : "";
    const tiles = seats.map((s) => {
      const b = el("button", { type: "button", class: "seat", data: { seat: s.id } },
        el("span", { class: "glyph", "aria-hidden": "true" }), el("span", { class: "lbl" }));
      if (mode === "grid" && s.row && s.col) { b.style.gridRow = s.row; b.style.gridColumn = s.col; }
      if (mode === "free") {
        // x/y are fractions of the layout box for the seat's centre; keep tiles inside the box.
        b.style.left = `calc(23px + (100% - 46px) * ${Number(s.x)})`;
        b.style.top = `calc(22px + (100% - 44px) * ${Number(s.y)})`;
      }
      state.seatEls.set(s.id, b);
      return b;
    });
    map.replaceChildren(...tiles);
    if (!seats.length) map.replaceChildren(el("p", { class: "muted", text: t("site.noSeats") }));
  }
  state.counts = { free: 0, occupied: 0, unknown: 0, fault: 0 };
  for (const s of seats) { fillSeat(state.seatEls.get(s.id), s); state.counts[seatState(s)]++; }
  renderLegend();
  showSeatInfo();
}

const seatState = (s) => (SEAT_STATES.includes(s.state) ? s.state : "unknown");

function seatText(s) {
  const st = seatState(s);
  return [s.label || s.id, t(`seat.${st}`),
    s.since ? t("seat.since", { time: fmtTime(s.since) }) : null,
    s.reason && (st === "unknown" || st === "fault") ? t("seat.reason", { reason: tCode("reason", s.reason) }) : null,
  ].filter(Boolean).join(" · ");
}

function fillSeat(b, s) {
  const st = seatState(s);
  b.dataset.state = st;
  b.firstChild.textContent = GLYPH[st];
  b.lastChild.textContent = s.label || s.id;
  const text = seatText(s);
  b.title = text;
  b.setAttribute("aria-label", text);
}

function renderLegend() {
  $("legend").replaceChildren(...SEAT_STATES.map((st) => el("li", {},
    el("span", { class: "seat", data: { swatch: st }, "aria-hidden": "true" }, GLYPH[st]),
    el("span", { class: "num", text: `${t(`seat.${st}`)} ${state.counts[st]}` }))));
}

function showSeatInfo() {
  const s = state.selectedSeat && state.seats.get(state.selectedSeat);
  $("seat-info").textContent = s ? seatText(s) : t("seat.hint");
  for (const b of $("seatmap").querySelectorAll('[aria-pressed="true"]')) b.setAttribute("aria-pressed", "false");
  state.seatEls.get(state.selectedSeat)?.setAttribute("aria-pressed", "true");
}

$("seatmap").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-seat]");
  if (!b) return;
  state.selectedSeat = state.selectedSeat === b.dataset.seat ? null : b.dataset.seat;
  showSeatInfo();
});

function doorItem(door) {
  const st = ["open", "closed"].includes(door.state) ? door.state : "unknown";
  const when = el("span", { class: "when" });
  if (door.since) { when.textContent = t("seat.since", { time: fmtTime(door.since) }); when.title = fmtFull(door.since); }
  return el("li", { data: { door: door.id } }, el("span", { class: "name", text: door.label || door.id }),
    el("span", { class: "badge door", data: { state: st }, text: tCode("doorstate", st) }), when);
}

function renderDoors() {
  const items = [...state.doors.values()].map(doorItem);
  $("doors").replaceChildren(...(items.length ? items : [el("li", { class: "muted", text: t("site.noDoors") })]));
}

function renderGateways(site) {
  const items = (site.gateways || []).map((g) => {
    const seen = el("span", { class: "when" });
    setRel(seen, g.last_seen, "card.lastSeen");
    return el("li", { data: { gateway: g.id } }, el("span", { class: "name", text: g.id }),
      el("span", { class: "badge", data: { state: g.state || "unknown" }, text: tCode("gwstate", g.state),
        title: g.since ? t("gwlist.since", { time: fmtFull(g.since) }) : null }), seen);
  });
  $("gateways").replaceChildren(...(items.length ? items : [el("li", { class: "muted", text: t("site.noGateways") })]));
}

function renderDevices() {
  const rows = (state.detail.devices || []).map((dv) => {
    const hb = el("td");
    setRel(hb, dv.last_heartbeat, "time.rel");
    const mv = typeof dv.supply_mv === "number" ? dv.supply_mv : null;
    return el("tr", { data: { device: dv.id } },
      el("td", { text: dv.id }),
      el("td", {}, el("span", { class: "badge", data: { state: dv.state || "unknown" }, text: tCode("devstate", dv.state) })),
      el("td", { class: mv !== null && mv < SUPPLY_LOW_MV ? "num low" : "num", text: mv === null ? "—" : `${(mv / 1000).toFixed(2)} V` }),
      hb, el("td", { text: dv.gateway ?? "—" }), el("td", { text: dv.firmware ?? "—" }));
  });
  $("devices").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: t("site.noDevices") }))]));
}

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
  renderLegend();
  showSeatInfo();
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
  renderDoors(); // a site has one or two doors: redrawing the short list is simplest
}

function onDevice(siteId, device) {
  if (state.view.name !== "site" || siteId !== state.view.id || !state.detail) return;
  const devices = (state.detail.devices || []).filter(
    (d) => !(d.id === device.id && d.gateway === device.gateway));
  devices.push(device);
  devices.sort((a, b) => `${a.gateway}/${a.id}`.localeCompare(`${b.gateway}/${b.id}`));
  state.detail.devices = devices;
  renderDevices(); // a site has a handful of boards: redrawing the table is simplest
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
