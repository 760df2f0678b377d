// How a site is drawn on the operator page: its card (on the overview, and as the header of the
// site view) and the panels of the site view (alerts, seat map and legend, doors, gateways,
// sensor boards, the air of each room).
//
// Only DOM building from the model that operator.js keeps: no network, no timers. API strings
// only ever become text (el() / textContent), never markup.

import { t, tCode, getLang, siteName, districtName, fmtTime, fmtFull, el, setRel } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
export const SEAT_STATES = ["free", "occupied", "unknown", "fault"];
// A seat with a presence channel may be away (暂离) or held while empty (占座): an occupied seat
// drawn apart (data-use), counted apart in the legend (docs/live.md, "Seat states").
const SEAT_USES = ["away", "held"];
const GLYPH = { free: "✓", occupied: "●", unknown: "?", fault: "⚠", away: "◐", held: "占" };
const seatUse = (s) => (SEAT_USES.includes(s.use) ? s.use : null);
const SUPPLY_LOW_MV = 3400; // the sensor boards raise SUPPLY_LOW below this (emulator profile)
const SEVERITIES = ["critical", "warning", "info"]; // most severe first

// ---- site card -----------------------------------------------------------------------------

/** The elements of a site card: a link on the overview (`link`), the site view's header otherwise. */
export function buildCard(link, id) {
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
    // The site view lists the alerts in a panel right below its header: no badge there.
    alerts: link ? el("span", { class: "badge alerts plain", data: { role: "alerts", count: "0" }, hidden: "" }) : null,
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
    el("div", { class: "card-tags" }, ...(c.alerts ? [c.alerts] : []), c.open, c.door, c.inside),
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

export function fillCard(c, s) {
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

  if (c.alerts) {
    const n = alertCount(s);
    c.alerts.dataset.count = String(n);
    c.alerts.hidden = n === 0;
    c.alerts.textContent = t(n === 1 ? "card.alertsOne" : "card.alerts", { n });
  }
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

/** Number of alerts firing at a site (SiteSummary.alerts; 0 from a service without alerts). */
export function alertCount(s) {
  const n = Number(s?.alerts);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

// ---- alerts panel --------------------------------------------------------------------------

const alertSummary = (a) => (getLang() === "en" ? a.summary_en || a.summary_zh : a.summary_zh || a.summary_en) || a.rule || a.id;
const quiet = (a) => Boolean(a.silenced || a.inhibited_by);

function alertItem(a) {
  const sev = SEVERITIES.includes(a.severity) ? a.severity : "unknown";
  const ago = el("span");
  setRel(ago, a.starts_at, "time.rel");
  const when = el("span", { class: "when" },
    el("span", { text: t("alert.since", { time: fmtTime(a.starts_at) }), title: fmtFull(a.starts_at) }), " · ", ago);
  const tags = [];
  if (a.silenced) {
    tags.push(el("span", { class: "badge plain tag", data: { tag: "silenced" }, text: t("alert.silenced"),
      title: t("alert.silencedHint") }));
  }
  if (a.inhibited_by) {
    tags.push(el("span", { class: "badge plain tag", data: { tag: "inhibited" }, text: t("alert.inhibited"),
      title: t("alert.inhibitedHint", { id: a.inhibited_by }) }));
  }
  if (a.acknowledged) { // an operator took it on (alert_actions.js gives the button)
    tags.push(el("span", { class: "badge plain tag", data: { tag: "acknowledged" },
      text: `已确认 Acknowledged · ${a.acknowledged.by}${a.acknowledged.note ? `：${a.acknowledged.note}` : ""}` }));
  }
  return el("li", { class: quiet(a) ? "alert quiet" : "alert",
    data: { alert: a.id, severity: sev, rule: a.rule, ...(a.acknowledged ? { acked: "1" } : {}) },
    title: [a.rule, a.sensor || a.device || a.gateway].filter(Boolean).join(" · ") || null },
  el("span", { class: "sev", data: { sev } }, sev === "unknown" ? String(a.severity ?? "?") : t(`severity.${sev}`)),
  el("span", { class: "alert-text", text: alertSummary(a) }),
  el("span", { class: "alert-meta" }, when, ...tags));
}

/** Fill the alerts panel from a site's list (newest first); the panel's edge shows the worst
 *  severity among the alerts that are neither silenced nor inhibited. */
export function renderAlerts(alerts) {
  const list = (Array.isArray(alerts) ? alerts : []).filter((a) => a && a.state !== "resolved")
    .sort((a, b) => (Date.parse(b.starts_at) || 0) - (Date.parse(a.starts_at) || 0));
  const loud = list.filter((a) => !quiet(a));
  $("alerts-panel").dataset.level = SEVERITIES.find((s) => loud.some((a) => a.severity === s))
    || (list.length ? "quiet" : "none");
  const count = $("alerts-count");
  count.hidden = !list.length;
  count.textContent = String(list.length);
  $("alerts").replaceChildren(...(list.length ? list.map(alertItem)
    : [el("li", { class: "muted", data: { role: "no-alerts" }, text: t("alert.none") })]));
}

export function clearAlerts() {
  $("alerts-panel").dataset.level = "none";
  $("alerts-count").hidden = true;
  $("alerts").replaceChildren();
}

// ---- seat map ------------------------------------------------------------------------------

export const seatState = (s) => (SEAT_STATES.includes(s.state) ? s.state : "unknown");

/** Draw the open site's seats from `state` (operator.js): the map is rebuilt only when its
 *  shape changed, otherwise the tiles are updated in place. Sets state.mapKey / seatEls / counts. */
export function renderSeatMap(state) {
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
  state.counts = { free: 0, occupied: 0, unknown: 0, fault: 0, away: 0, held: 0 };
  for (const s of seats) {
    fillSeat(state.seatEls.get(s.id), s);
    state.counts[seatState(s)]++;
    if (seatUse(s)) state.counts[seatUse(s)]++;
  }
  renderLegend(state.counts);
  showSeatInfo(state);
}

function seatText(s) {
  const st = seatState(s), use = seatUse(s);
  if (use) {
    return [s.label || s.id, t(`seat.${use}`),
      s.away_since ? t("seat.awaySince", { time: fmtTime(s.away_since) }) : null,
      s.held_at ? t(`seat.${use}At`, { time: fmtTime(s.held_at) }) : null].filter(Boolean).join(" · ");
  }
  return [s.label || s.id, t(`seat.${st}`),
    s.since ? t("seat.since", { time: fmtTime(s.since) }) : null,
    s.reason && (st === "unknown" || st === "fault") ? t("seat.reason", { reason: tCode("reason", s.reason) }) : null,
  ].filter(Boolean).join(" · ");
}

export function fillSeat(b, s) {
  const st = seatState(s), use = seatUse(s);
  b.dataset.state = st;
  if (use) b.dataset.use = use; else delete b.dataset.use;
  b.firstChild.textContent = GLYPH[use || st];
  b.lastChild.textContent = s.label || s.id;
  const text = seatText(s);
  b.title = text;
  b.setAttribute("aria-label", text);
}

export function renderLegend(counts) {
  const shown = [...SEAT_STATES, ...SEAT_USES.filter((use) => counts[use])];
  $("legend").replaceChildren(...shown.map((st) => el("li", {},
    el("span", { class: "seat", data: { swatch: st }, "aria-hidden": "true" }, GLYPH[st]),
    el("span", { class: "num", text: `${t(`seat.${st}`)} ${counts[st]}` }))));
}

/** Describe the selected seat (state.selectedSeat) under the map and mark its tile. */
export function showSeatInfo(state) {
  const s = state.selectedSeat && state.seats.get(state.selectedSeat);
  $("seat-info").textContent = s ? seatText(s) : t("seat.hint");
  for (const b of $("seatmap").querySelectorAll('[aria-pressed="true"]')) b.setAttribute("aria-pressed", "false");
  state.seatEls.get(state.selectedSeat)?.setAttribute("aria-pressed", "true");
}

// ---- air, doors, gateways, sensor boards ---------------------------------------------------

const CO2_HIGH_PPM = 1000; // the co2_high alert's default threshold (config/alerts.yaml)

function airValue(key, value, text, high = false) {
  return el("span", { class: high ? "air-value num low" : "air-value num", data: { value: key } },
    el("span", { class: "muted", text: `${t(`air.${key}`)} ` }), value == null ? "—" : text);
}

function airItem(a) {
  const stale = a.state !== "ok";
  const when = el("span", { class: "when" });
  setRel(when, a.ts, "time.rel");
  return el("li", { class: stale ? "air stale" : "air", data: { air: a.id, state: stale ? "stale" : "ok" } },
    el("span", { class: "name", text: a.id }),
    airValue("temperature", a.temperature_c, `${Number(a.temperature_c).toFixed(1)} °C`),
    airValue("humidity", a.humidity_pct, `${Math.round(Number(a.humidity_pct))} %`),
    airValue("co2", a.co2_ppm, `${Math.round(Number(a.co2_ppm))} ppm`, a.co2_ppm >= CO2_HIGH_PPM),
    ...(stale ? [el("span", { class: "badge", data: { state: "unknown" }, text: t("air.stale"),
      title: tCode("reason", a.reason) })] : []),
    when);
}

/** The open site's air sensors (SiteDetail.air): a stale one keeps its last values, marked 离线. */
export function renderAir(air) {
  const items = (Array.isArray(air) ? air : []).map(airItem);
  $("air").replaceChildren(...(items.length ? items : [el("li", { class: "muted", text: t("site.noAir") })]));
}

function doorItem(door) {
  const st = ["open", "closed"].includes(door.state) ? door.state : "unknown";
  const when = el("span", { class: "when" });
  if (door.since) { when.textContent = t("seat.since", { time: fmtTime(door.since) }); when.title = fmtFull(door.since); }
  return el("li", { data: { door: door.id } }, el("span", { class: "name", text: door.label || door.id }),
    el("span", { class: "badge door", data: { state: st }, text: tCode("doorstate", st) }), when);
}

export function renderDoors(doors) {
  const items = [...doors.values()].map(doorItem);
  $("doors").replaceChildren(...(items.length ? items : [el("li", { class: "muted", text: t("site.noDoors") })]));
}

export function renderGateways(site) {
  const items = (site.gateways || []).map((g) => {
    const seen = el("span", { class: "when" });
    setRel(seen, g.last_seen, "card.lastSeen");
    return el("li", { data: { gateway: g.id } }, el("span", { class: "name", text: g.id }),
      el("span", { class: "badge", data: { state: g.state || "unknown" }, text: tCode("gwstate", g.state),
        title: g.since ? t("gwlist.since", { time: fmtFull(g.since) }) : null }), seen);
  });
  $("gateways").replaceChildren(...(items.length ? items : [el("li", { class: "muted", text: t("site.noGateways") })]));
}

export function renderDevices(devices) {
  const rows = (devices || []).map((dv) => {
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
