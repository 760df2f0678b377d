// Public page (/public): free seats per book house for residents.
//
// Polls /api/v1/public/sites every 20 s with a plain, cookie-less GET and no cache-busting
// query, so a public proxy or the browser cache can answer it. Polling pauses while the tab is
// hidden. API strings go into the page only through textContent.

import { t, tCode, bindLangButton, onLangChange, siteName, districtName, fmtTime, fmtFull, el } from "/static/i18n.js";

const POLL_MS = 20_000;
const URL_SITES = "/api/v1/public/sites";

const rowsEl = document.getElementById("rows");
const statusEl = document.getElementById("status");
const rows = new Map(); // site id -> row refs
let snapshot = null;    // last good response
let failed = false;     // last poll failed
let timer = 0;
let lastPoll = 0;

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
    open: el("span", { class: "badge" }), hours: el("span", { class: "muted" }),
    free: el("span", { class: "n num", data: { role: "free" } }),
    cap: el("span", { class: "cap" }), total: el("span", { class: "cap" }),
  };
  r.root.append(
    el("div", { class: "row-main" }, r.name, r.addr, el("div", { class: "hours" }, r.open, r.hours)),
    el("div", { class: "row-free" }, r.free, r.cap, el("br"), r.total),
  );
  return r;
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
  r.hours.textContent = s.hours_today ? t("hours.today", { hours: s.hours_today }) : t("hours.closedToday");
  const known = typeof s.free_seats === "number";
  r.free.textContent = known ? String(s.free_seats) : t("noData");
  r.free.classList.toggle("nodata", !known);
  r.free.classList.toggle("zero", s.free_seats === 0);
  r.cap.textContent = known ? t("pub.freeLabel") : "";
  r.total.textContent = s.total_seats ? t("pub.ofTotal", { total: s.total_seats }) : "";
  r.root.title = s.updated_at ? fmtFull(s.updated_at) : "";
}

function render() {
  if (!snapshot) return;
  const sites = [...(snapshot.sites || [])].sort(compareSites);
  const seen = new Set();
  for (const s of sites) {
    seen.add(s.id);
    let r = rows.get(s.id);
    if (!r) { r = buildRow(s.id); rows.set(s.id, r); }
    fillRow(r, s);
    rowsEl.append(r.root); // appending an existing node moves it: this applies the sort order
  }
  for (const [id, r] of rows) if (!seen.has(id)) { r.root.remove(); rows.delete(id); }
  renderStatus();
}

function renderStatus() {
  statusEl.classList.toggle("error", failed);
  if (failed) statusEl.textContent = t("pub.error");
  else if (!snapshot) statusEl.textContent = t("pub.loading");
  else if (!(snapshot.sites || []).length) statusEl.textContent = t("pub.empty");
  else statusEl.textContent = t("pub.updated", { time: fmtTime(snapshot.generated_at) });
}

async function poll() {
  clearTimeout(timer);
  lastPoll = Date.now();
  try {
    const res = await fetch(URL_SITES, { credentials: "omit" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    snapshot = await res.json();
    failed = false;
    render();
  } catch (err) {
    failed = true;
    renderStatus();
  }
  if (!document.hidden) timer = setTimeout(poll, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) { clearTimeout(timer); return; }
  if (Date.now() - lastPoll > 5_000) poll();
  else { clearTimeout(timer); timer = setTimeout(poll, POLL_MS); }
});

bindLangButton(document.querySelector('[data-role="lang"]'));
onLangChange(render);
onLangChange(renderStatus);
poll();
