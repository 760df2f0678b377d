// Public page (/public, and /public?site=ID for one house with its seat map), for residents.
//
// Live through server-sent events (/api/v1/public/events): a stream opens with the whole view
// (`sites`, or `detail` for one house), then sends `site` (a house changed) and `seat` (one
// seat of the map). When the stream drops, the page reads the cacheable JSON every 30 s until
// the stream is back (EventSource reconnects by itself). Counts only: nothing about a person.
//
// Large-text mode (适老化): a toggle remembered in localStorage (`qihe.large`); until a reader
// chooses, a house whose directory entry asks for it (`large_text`, day-care centres) opens in
// it. API strings go into the page only through textContent.

import { STRINGS, applyStatic, t, tCode, bindLangButton, onLangChange, siteName, districtName, fmtTime, fmtFull, relTime, el } from "/static/i18n.js";

Object.assign(STRINGS.zh, {
  "pub.intro": "各书屋当前的空闲自习座位，实时更新。",
  "pub.introOne": "当前空闲座位与座位图，实时更新。",
  "pub.allHouses": "‹ 全部书屋",
  "pub.seatMap": "座位图",
  "pub.large": "大字",
  "pub.largeHint": "大字模式：开 / 关",
  "pub.live": "实时 · 更新于 {time}",
  "pub.polling": "实时连接中断，每 30 秒刷新 · 更新于 {time}",
  "pub.likelyFree": "另有 {n} 个座位可能空闲（有物品、无人）",
  "pub.busy.busier": "比平时忙",
  "pub.busy.usual": "和平时差不多",
  "pub.busy.quieter": "比平时空闲",
  "pub.busyNow": "现在 {now}% · 通常 {usual}%",
  "pub.busyOnly": "现在 {now}% 座位有人",
  "pub.age": "数据更新于{time}",
  "pub.stale": "数据已过期 · 最后更新于{time}",
  "pub.noSeats": "此处没有自习座位数据。",
  "pub.mapLink": "查看座位图",
  "pub.notFound": "没有找到这个站点。",
  "pub.privacy": "本页只显示座位数量和空闲状态，不涉及任何个人信息。",
  "pub.openData": "开放数据 JSON",
  "seat.free": "空闲",
  "seat.occupied": "有人",
  "seat.likely_free": "可能空闲",
  "seat.unknown": "未知",
});
Object.assign(STRINGS.en, {
  "pub.intro": "Free study seats in each book house right now, updated live.",
  "pub.introOne": "Free seats and the seat map right now, updated live.",
  "pub.allHouses": "‹ All houses",
  "pub.seatMap": "Seat map",
  "pub.large": "Large text",
  "pub.largeHint": "Large text: on / off",
  "pub.live": "Live · updated {time}",
  "pub.polling": "Live link lost, refreshing every 30 s · updated {time}",
  "pub.likelyFree": "{n} more likely free (things left, nobody there)",
  "pub.busy.busier": "Busier than usual",
  "pub.busy.usual": "About as usual",
  "pub.busy.quieter": "Quieter than usual",
  "pub.busyNow": "Now {now}% · usually {usual}%",
  "pub.busyOnly": "Now {now}% of seats taken",
  "pub.age": "Data updated {time}",
  "pub.stale": "Data out of date · last updated {time}",
  "pub.noSeats": "No study-seat data here.",
  "pub.mapLink": "Seat map",
  "pub.notFound": "No such house.",
  "pub.privacy": "This page shows seat counts and free seats only, nothing about any person.",
  "pub.openData": "Open data (JSON)",
  "seat.free": "Free",
  "seat.occupied": "Taken",
  "seat.likely_free": "Likely free",
  "seat.unknown": "Unknown",
});

const ARROWS = { busier: "↑", usual: "→", quieter: "↓" };
const POLL_MS = 30_000;
const LARGE_KEY = "qihe.large";
const params = new URLSearchParams(location.search);
const SITE = /^[a-z0-9][a-z0-9_-]{0,63}$/i.test(params.get("site") || "") ? params.get("site") : null;

const rowsEl = document.getElementById("rows");
const statusEl = document.getElementById("status");
const mapPanel = document.querySelector('[data-role="seatmap-panel"]');
const mapEl = document.querySelector('[data-role="seatmap"]');
const legendEl = document.querySelector('[data-role="legend"]');
const largeBtn = document.querySelector('[data-role="large"]');
const rows = new Map();     // site id -> row refs
let houses = new Map();     // site id -> house (PublicHouse)
let staleAfter = 180;       // seconds
let generatedAt = null;     // ISO time of the last view
let seats = new Map();      // seat number -> seat (one house's map)
let layout = null;
let live = false;           // the stream is open
let failed = false;         // the last fallback read failed
let loaded = false;
let source = null;
let pollTimer = 0;

// ---- large text ---------------------------------------------------------------------------

function storedLarge() {
  try { const v = localStorage.getItem(LARGE_KEY); return v === "1" ? true : v === "0" ? false : null; }
  catch { return null; }
}
function applyLarge() {
  const was = document.documentElement.classList.contains("large");
  const house = SITE ? houses.get(SITE) : null;
  const chosen = storedLarge();
  const on = chosen ?? !!(house && house.large_text);
  document.documentElement.classList.toggle("large", on);
  largeBtn.setAttribute("aria-pressed", String(on));
  largeBtn.textContent = t("pub.large"); // the pressed look says whether it is on
  largeBtn.title = t("pub.largeHint");
  if (was !== on && seats.size) renderMap();
}
largeBtn.addEventListener("click", () => {
  const on = !document.documentElement.classList.contains("large");
  try { localStorage.setItem(LARGE_KEY, on ? "1" : "0"); } catch { /* private mode */ }
  applyLarge();
});

// ---- houses -------------------------------------------------------------------------------

/** Open sites first, then most free seats (no data last), then by name for a stable order. */
function compareSites(a, b) {
  if (!!a.open_now !== !!b.open_now) return a.open_now ? -1 : 1;
  const fa = a.free_seats ?? -1, fb = b.free_seats ?? -1;
  if (fa !== fb) return fb - fa;
  return siteName(a).localeCompare(siteName(b), "zh-CN");
}

function buildRow(id) {
  const r = {
    root: el("li", { class: "row", data: { site: id } }), name: el("h2"), addr: el("div", { class: "addr" }),
    open: el("span", { class: "badge" }), hours: el("span", { class: "hours-text" }),
    busy: el("div", { class: "busy", data: { role: "busy" } }),
    age: el("div", { class: "age", data: { role: "age" } }),
    free: el("span", { class: "n num", data: { role: "free" } }),
    cap: el("span", { class: "cap" }), total: el("span", { class: "cap" }),
    likely: el("div", { class: "likely", data: { role: "likely" } }),
    link: el("a", { class: "map-link", data: { role: "map-link" } }),
  };
  r.root.append(
    el("div", { class: "row-main" }, r.name, r.addr, el("div", { class: "hours" }, r.open, r.hours), r.busy, r.likely, r.age, r.link),
    el("div", { class: "row-free" }, r.free, r.cap, el("br"), r.total),
  );
  return r;
}

function isStale(s, now = Date.now()) {
  if (typeof s.free_seats !== "number" && s.total_seats) return true;
  if (!s.updated_at) return !!s.total_seats;
  return (now - new Date(s.updated_at).getTime()) / 1000 > staleAfter;
}

function fillAge(r, s) {
  const stale = isStale(s);
  r.root.classList.toggle("stale", stale);
  r.age.dataset.stale = String(stale);
  const when = s.updated_at ? relTime(s.updated_at) : t("noData");
  r.age.textContent = t(stale ? "pub.stale" : "pub.age", { time: when });
  r.age.title = s.updated_at ? fmtFull(s.updated_at) : "";
}

function fillRow(r, s) {
  r.root.classList.toggle("closed", !s.open_now);
  r.name.textContent = siteName(s);
  const kind = s.kind && s.kind !== "book_house" ? tCode("kind", s.kind) : null;
  // Addresses usually start with the district already ("山城区馨苑二区…"): do not say it twice.
  const district = s.address && s.district && s.address.startsWith(districtName(s)) ? null : districtName(s);
  r.addr.textContent = [district, s.address, kind].filter(Boolean).join(" · ");
  r.open.dataset.state = s.open_now ? "open-now" : "closed-now";
  r.open.textContent = t(s.open_now ? "open.now" : "open.closed");
  r.hours.textContent = (s.hours_today ? t("hours.today", { hours: s.hours_today }) : t("hours.closedToday"))
    + (s.hours_note ? ` · ${s.hours_note}` : ""); // a holiday, 调休 day or closure (both languages)
  const known = typeof s.free_seats === "number";
  r.free.textContent = known ? String(s.free_seats) : t("noData");
  r.root.classList.toggle("no-seats", !s.total_seats); // a day-care centre: opening only
  r.free.classList.toggle("nodata", !known);
  r.free.classList.toggle("zero", s.free_seats === 0);
  r.cap.textContent = known ? t("pub.freeLabel") : "";
  r.total.textContent = s.total_seats ? t("pub.ofTotal", { total: s.total_seats }) : "";
  const likely = typeof s.likely_free === "number" && s.likely_free > 0 ? s.likely_free : 0;
  r.likely.hidden = !likely;
  r.likely.textContent = likely ? t("pub.likelyFree", { n: likely }) : "";
  fillBusy(r.busy, s);
  fillAge(r, s);
  r.age.hidden = !s.total_seats;
  r.link.hidden = !!SITE || !s.total_seats;
  r.link.href = `/public?site=${encodeURIComponent(s.id)}`;
  r.link.textContent = t("pub.mapLink");
}

function fillBusy(node, s) {
  node.textContent = "";
  node.dataset.trend = s.trend || "";
  if (typeof s.busy_pct !== "number" || !s.open_now) { node.hidden = true; return; }
  node.hidden = false;
  const pct = (v) => String(Math.round(v));
  if (s.trend && typeof s.usual_pct === "number") {
    node.append(
      el("span", { class: "arrow", "aria-hidden": "true" }, ARROWS[s.trend] || ""),
      el("strong", {}, t(`pub.busy.${s.trend}`)),
      el("span", { class: "muted" }, ` · ${t("pub.busyNow", { now: pct(s.busy_pct), usual: pct(s.usual_pct) })}`),
    );
  } else {
    node.append(el("span", { class: "muted" }, t("pub.busyOnly", { now: pct(s.busy_pct) })));
  }
}

function renderHouses() {
  const list = [...houses.values()].filter((s) => !SITE || s.id === SITE).sort(compareSites);
  const seen = new Set();
  for (const s of list) {
    seen.add(s.id);
    let r = rows.get(s.id);
    if (!r) { r = buildRow(s.id); rows.set(s.id, r); }
    fillRow(r, s);
    rowsEl.append(r.root); // appending an existing node moves it: this applies the sort order
  }
  for (const [id, r] of rows) if (!seen.has(id)) { r.root.remove(); rows.delete(id); }
  if (SITE) document.title = houses.has(SITE) ? `${siteName(houses.get(SITE))} · ${t("pub.seatMap")}` : t("pub.title");
  applyLarge();
  renderStatus();
}

function renderStatus() {
  statusEl.classList.toggle("error", failed && !live);
  const time = generatedAt ? fmtTime(generatedAt) : "—";
  if (!loaded) statusEl.textContent = failed ? t("pub.error") : t("pub.loading");
  else if (SITE && !houses.has(SITE)) statusEl.textContent = t("pub.notFound");
  else if (!houses.size) statusEl.textContent = t("pub.empty");
  else if (live) statusEl.textContent = t("pub.live", { time });
  else statusEl.textContent = failed ? t("pub.error") : t("pub.polling", { time });
  statusEl.dataset.state = live ? "live" : failed ? "error" : "polling";
}

// ---- seat map (SVG) -----------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const CELL = 56, GAP = 8, PAD = 8;
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function renderLegend() {
  legendEl.textContent = "";
  for (const state of ["free", "occupied", "likely_free", "unknown"]) {
    const swatch = svg("svg", { viewBox: "0 0 20 16", width: 24, height: 19, class: "swatch", "aria-hidden": "true" });
    swatch.append(svg("rect", { x: 1, y: 1, width: 18, height: 14, rx: 3, class: "seat-box", "data-state": state }));
    legendEl.append(el("li", { data: { legend: state } }, swatch, t(`seat.${state}`)));
  }
}

function renderMap() {
  mapPanel.hidden = !SITE || !seats.size;
  if (mapPanel.hidden) { mapEl.textContent = ""; return; }
  const list = [...seats.values()];
  const placed = list.every((s) => s.row != null);
  let width, height, place;
  if (placed) {
    const rowsN = Math.max(...list.map((s) => s.row)), colsN = Math.max(...list.map((s) => s.col));
    width = PAD * 2 + colsN * CELL + (colsN - 1) * GAP;
    height = PAD * 2 + rowsN * CELL + (rowsN - 1) * GAP;
    place = (s) => [PAD + (s.col - 1) * (CELL + GAP), PAD + (s.row - 1) * (CELL + GAP)];
  } else {
    // Seats by fractions of the room (x, y), or in a row below when a seat has neither.
    width = 640; height = 400;
    let spare = 0;
    place = (s) => s.x != null
      ? [s.x * (width - CELL), s.y * (height - CELL)]
      : [PAD + (spare++ % 10) * (CELL + GAP), height - CELL - PAD];
  }
  // Its natural size at most (a small room is not blown up on a desktop), narrower on a phone.
  const scale = document.documentElement.classList.contains("large") ? 1.25 : 1;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width: Math.round(width * scale), height: Math.round(height * scale),
    class: "seat-svg", role: "img", "aria-label": t("pub.seatMap"),
  });
  root.append(svg("rect", { x: 0, y: 0, width, height, rx: 10, class: "room" }));
  for (const s of list) {
    const [x, y] = place(s);
    const g = svg("g", { "data-seat": s.n, "data-state": s.state, transform: `translate(${x} ${y})` });
    const title = svg("title");
    title.textContent = `${s.label} · ${t(`seat.${s.state}`)}`;
    const label = svg("text", { x: CELL / 2, y: CELL / 2 + 1, class: "seat-label", "text-anchor": "middle", "dominant-baseline": "middle" });
    label.textContent = s.label;
    g.append(title, svg("rect", { width: CELL, height: CELL, rx: 8, class: "seat-box", "data-state": s.state }), label);
    root.append(g);
  }
  mapEl.textContent = "";
  mapEl.append(root);
}

function setSeat(seat) {
  seats.set(seat.n, seat);
  const g = mapEl.querySelector(`[data-seat="${seat.n}"]`);
  if (!g) { renderMap(); return; }
  g.setAttribute("data-state", seat.state);
  g.querySelector("rect").setAttribute("data-state", seat.state);
  g.querySelector("title").textContent = `${seat.label} · ${t(`seat.${seat.state}`)}`;
}

// ---- data in: the stream, and the cacheable JSON while it is down ---------------------------

function takeView(view) {
  generatedAt = view.generated_at;
  staleAfter = view.stale_after_s ?? staleAfter;
  loaded = true;
  failed = false;
  if (view.sites) houses = new Map(view.sites.map((s) => [s.id, s]));
  if (view.site) {
    houses = new Map([[view.site.id, view.site]]);
    layout = view.layout;
    seats = new Map(view.seats.map((s) => [s.n, s]));
    renderMap();
  }
  renderHouses();
}

function connect() {
  if (source) source.close();
  const url = "/api/v1/public/events" + (SITE ? `?site=${encodeURIComponent(SITE)}` : "");
  source = new EventSource(url);
  source.addEventListener("open", () => { live = true; stopPolling(); renderStatus(); });
  source.addEventListener("sites", (e) => takeView(JSON.parse(e.data)));
  source.addEventListener("detail", (e) => takeView(JSON.parse(e.data)));
  source.addEventListener("site", (e) => {
    const house = JSON.parse(e.data).site;
    if (SITE && house.id !== SITE) return;
    houses.set(house.id, house);
    generatedAt = new Date().toISOString();
    renderHouses();
  });
  source.addEventListener("seat", (e) => setSeat(JSON.parse(e.data).seat));
  source.addEventListener("resync", () => connect()); // a fresh stream opens with the whole view
  source.addEventListener("error", () => {
    live = false;
    startPolling();
    renderStatus();
    // A closed stream (an HTTP error, e.g. 429 or 503) is not retried by the browser itself.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, POLL_MS);
  });
}

async function poll() {
  clearTimeout(pollTimer);
  if (live) return;
  const url = SITE ? `/api/v1/public/sites/${encodeURIComponent(SITE)}` : "/api/v1/public/sites";
  try {
    const res = await fetch(url, { credentials: "omit" }); // cacheable: no cookies, no cache-busting
    if (res.status === 404) { loaded = true; houses = new Map(); renderHouses(); return; }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    if (!live) takeView(await res.json());
  } catch {
    failed = true;
    renderStatus();
  }
  if (!live) pollTimer = setTimeout(poll, POLL_MS);
}
function startPolling() { if (!pollTimer) pollTimer = setTimeout(poll, loaded ? POLL_MS : 0); }
function stopPolling() { clearTimeout(pollTimer); pollTimer = 0; }

// Data ages and "stale" move with time alone.
setInterval(() => { for (const [id, r] of rows) if (houses.has(id)) fillAge(r, houses.get(id)); }, 15_000);

if (SITE) {
  document.querySelector('[data-role="back"]').hidden = false;
  const intro = document.querySelector('[data-role="intro"]');
  intro.dataset.i18n = "pub.introOne";
  intro.textContent = t("pub.introOne");
}
applyStatic(); // again: the strings above came after i18n.js translated the markup
bindLangButton(document.querySelector('[data-role="lang"]'));
onLangChange(() => { renderLegend(); renderHouses(); renderMap(); });
renderLegend();
applyLarge();
connect();
