// Shared translations, language switch and date/time formatting for the live pages.
//
// Chinese is the default. The choice is remembered in localStorage under `qihe.lang`;
// `?lang=en` / `?lang=zh` in the URL overrides it for that page load.
// Static markup is translated through attributes:
//   data-i18n="key"              → textContent
//   data-i18n-placeholder="key"  → placeholder
//   data-i18n-aria="key"         → aria-label
//   data-i18n-title="key"        → title
// Dynamic text is built with t(key, params) and re-rendered by the pages on onLangChange().

const STORAGE_KEY = "qihe.lang";
const LANGS = ["zh", "en"];
const HTML_LANG = { zh: "zh-CN", en: "en" };
const LOCALE = { zh: "zh-CN", en: "en-GB" };

export const STRINGS = {
  zh: {
    "lang.button": "EN / 中文",
    "lang.switch": "Switch to English",
    "app.brand": "淇河书屋",
    "op.title": "座位实时监控 · 淇河书屋",
    "op.heading": "座位实时监控",
    "pub.title": "淇河书屋 · 空闲座位",
    "pub.heading": "淇河书屋 · 空闲座位",
    "pub.intro": "各书屋当前的空闲自习座位，每 20 秒自动更新。",
    "pub.updated": "更新于 {time}",
    "pub.loading": "正在加载…",
    "pub.error": "暂时无法更新，稍后自动重试。",
    "pub.empty": "暂无站点。",
    "pub.freeLabel": "空闲座位",
    "pub.ofTotal": "共 {total} 座",
    "noData": "暂无数据",
    "auth.title": "需要操作员令牌",
    "auth.hint": "查看实时数据需要操作员令牌，请向系统管理员索取。令牌将保存在本浏览器中。",
    "auth.token": "操作员令牌",
    "auth.submit": "登录",
    "auth.wrong": "令牌不正确，请重试。",
    "conn.live": "实时",
    "conn.connecting": "连接中",
    "conn.offline": "已断开",
    "filter.district": "城区",
    "filter.allDistricts": "全部城区",
    "filter.search": "搜索站点名称",
    "summary.online": "在线站点",
    "summary.free": "空闲座位",
    "summary.open": "开放中",
    "summary.alerts": "告警",
    "summary.filtered": "（已筛选 {shown} / {all}）",
    "empty.filter": "没有符合条件的站点。",
    "loading": "正在加载…",
    "kind.book_house": "书屋",
    "kind.day_care": "日间照料中心",
    "kind.canteen": "长者食堂",
    "kind.other": "其他",
    "card.free": "空闲",
    "card.ofTotal": "/ {total}",
    "card.occupancy": "占用 {pct}",
    "card.occupancyNone": "占用 —",
    "card.inside": "室内 {n} 人",
    "card.unknownSeats": "未知 {n}",
    "card.faultSeats": "故障 {n}",
    "card.lastSeen": "最后上报 {time}",
    "card.alerts": "⚠ {n} 条告警",
    "card.alertsOne": "⚠ {n} 条告警",
    "card.neverSeen": "从未上报",
    "open.now": "开放中",
    "open.closed": "已关闭",
    "hours.today": "今日 {hours}",
    "hours.closedToday": "今日不开放",
    "gw.online": "网关在线",
    "gw.offline": "网关离线",
    "gw.silent": "网关无响应",
    "gw.unknown": "网关状态未知",
    "gw.none": "无网关",
    "gwstate.online": "在线",
    "gwstate.offline": "离线",
    "gwstate.silent": "无响应",
    "gwstate.unknown": "未知",
    "door.open": "门已打开",
    "door.closed": "门已关闭",
    "door.unknown": "门状态未知",
    "doorstate.open": "打开",
    "doorstate.closed": "关闭",
    "doorstate.unknown": "未知",
    "seat.free": "空闲",
    "seat.occupied": "占用",
    "seat.unknown": "未知",
    "seat.fault": "故障",
    "seat.away": "暂离",
    "seat.held": "占座（无人）",
    "seat.awaySince": "自 {time} 起无人",
    "seat.awayAt": "{time} 起视为占座",
    "seat.heldAt": "{time} 起占座",
    "seat.since": "自 {time} 起",
    "seat.reason": "原因：{reason}",
    "seat.hint": "点按座位查看详情。",
    "reason.no_data": "暂无数据",
    "reason.gateway_offline": "网关离线",
    "reason.gateway_silent": "网关无响应",
    "reason.device_silent": "传感器板无响应",
    "reason.stuck": "传感器卡滞",
    "reason.no_response": "传感器无应答",
    "reason.out_of_range": "读数超出范围",
    "reason.supply_low": "供电电压过低",
    "reason.other": "其他故障",
    "site.back": "← 全部站点",
    "site.seats": "座位图",
    "site.alerts": "告警",
    "site.doors": "门",
    "site.air": "室内空气",
    "site.noAir": "本站没有空气传感器。",
    "air.temperature": "温度",
    "air.humidity": "湿度",
    "air.co2": "二氧化碳",
    "air.stale": "离线",
    "reason.offline": "设备离线",
    "reason.sensor_silent": "传感器长时间无读数",
    "site.devices": "传感器板",
    "site.gateways": "网关",
    "site.noDoors": "本站没有门磁传感器。",
    "site.noDevices": "没有传感器板。",
    "site.noGateways": "没有网关。",
    "site.noSeats": "本站没有座位传感器。",
    "site.notFound": "找不到该站点。",
    "site.loadError": "加载失败：{msg}",
    "dev.id": "板号",
    "dev.gateway": "网关",
    "dev.firmware": "固件",
    "dev.supply": "供电电压",
    "dev.heartbeat": "最后心跳",
    "dev.state": "状态",
    "devstate.ok": "正常",
    "devstate.silent": "无响应",
    "devstate.unknown": "未知",
    "gwlist.since": "状态自 {time} 起",
    "severity.critical": "严重",
    "severity.warning": "警告",
    "severity.info": "提示",
    "alert.since": "自 {time} 起",
    "alert.silenced": "已静默",
    "alert.silencedHint": "处于维护时段：照常显示，但不发送通知",
    "alert.inhibited": "被抑制",
    "alert.inhibitedHint": "由告警 {id} 引起：照常显示，但不单独通知",
    "alert.none": "暂无告警",
    "time.justNow": "刚刚",
    "time.rel": "{time}",
  },
  en: {
    "lang.button": "EN / 中文",
    "lang.switch": "切换到中文",
    "app.brand": "Qihe Book Houses",
    "op.title": "Live seats · Qihe Book Houses",
    "op.heading": "Live seat monitor",
    "pub.title": "Qihe Book Houses · Free seats",
    "pub.heading": "Qihe Book Houses · Free seats",
    "pub.intro": "Free study seats in each book house right now, updated every 20 seconds.",
    "pub.updated": "Updated {time}",
    "pub.loading": "Loading…",
    "pub.error": "Cannot update right now; retrying automatically.",
    "pub.empty": "No sites.",
    "pub.freeLabel": "free seats",
    "pub.ofTotal": "of {total}",
    "noData": "no data",
    "auth.title": "Operator token required",
    "auth.hint": "The live data needs an operator token; ask your system administrator. It is kept in this browser.",
    "auth.token": "Operator token",
    "auth.submit": "Sign in",
    "auth.wrong": "Wrong token, please try again.",
    "conn.live": "Live",
    "conn.connecting": "Connecting",
    "conn.offline": "Disconnected",
    "filter.district": "District",
    "filter.allDistricts": "All districts",
    "filter.search": "Search by site name",
    "summary.online": "Sites online",
    "summary.free": "Free seats",
    "summary.open": "Open now",
    "summary.alerts": "Alerts",
    "summary.filtered": " (filtered: {shown} of {all})",
    "empty.filter": "No sites match the filter.",
    "loading": "Loading…",
    "kind.book_house": "Book house",
    "kind.day_care": "Day-care centre",
    "kind.canteen": "Canteen",
    "kind.other": "Other",
    "card.free": "free",
    "card.ofTotal": "/ {total}",
    "card.occupancy": "{pct} occupied",
    "card.occupancyNone": "occupancy —",
    "card.inside": "{n} inside",
    "card.unknownSeats": "{n} unknown",
    "card.faultSeats": "{n} fault",
    "card.lastSeen": "Last seen {time}",
    "card.alerts": "⚠ {n} alerts",
    "card.alertsOne": "⚠ {n} alert",
    "card.neverSeen": "Never seen",
    "open.now": "Open",
    "open.closed": "Closed",
    "hours.today": "Today {hours}",
    "hours.closedToday": "Closed today",
    "gw.online": "Gateway online",
    "gw.offline": "Gateway offline",
    "gw.silent": "Gateway silent",
    "gw.unknown": "Gateway unknown",
    "gw.none": "No gateway",
    "gwstate.online": "online",
    "gwstate.offline": "offline",
    "gwstate.silent": "silent",
    "gwstate.unknown": "unknown",
    "door.open": "Door open",
    "door.closed": "Door closed",
    "door.unknown": "Door unknown",
    "doorstate.open": "open",
    "doorstate.closed": "closed",
    "doorstate.unknown": "unknown",
    "seat.free": "free",
    "seat.occupied": "occupied",
    "seat.unknown": "unknown",
    "seat.fault": "fault",
    "seat.away": "away",
    "seat.held": "held while empty",
    "seat.awaySince": "nobody since {time}",
    "seat.awayAt": "held from {time}",
    "seat.heldAt": "held since {time}",
    "seat.since": "since {time}",
    "seat.reason": "reason: {reason}",
    "seat.hint": "Tap a seat for details.",
    "reason.no_data": "no data yet",
    "reason.gateway_offline": "gateway offline",
    "reason.gateway_silent": "gateway silent",
    "reason.device_silent": "sensor board silent",
    "reason.stuck": "sensor stuck",
    "reason.no_response": "sensor not responding",
    "reason.out_of_range": "reading out of range",
    "reason.supply_low": "supply voltage low",
    "reason.other": "other fault",
    "site.back": "← All sites",
    "site.seats": "Seat map",
    "site.alerts": "Alerts",
    "site.doors": "Doors",
    "site.air": "Air",
    "site.noAir": "This site has no air sensor.",
    "air.temperature": "Temperature",
    "air.humidity": "Humidity",
    "air.co2": "CO₂",
    "air.stale": "stale",
    "reason.offline": "device offline",
    "reason.sensor_silent": "no recent reading",
    "site.devices": "Sensor boards",
    "site.gateways": "Gateways",
    "site.noDoors": "This site has no door sensor.",
    "site.noDevices": "No sensor boards.",
    "site.noGateways": "No gateways.",
    "site.noSeats": "This site has no seat sensors.",
    "site.notFound": "Site not found.",
    "site.loadError": "Could not load: {msg}",
    "dev.id": "Board",
    "dev.gateway": "Gateway",
    "dev.firmware": "Firmware",
    "dev.supply": "Supply",
    "dev.heartbeat": "Last heartbeat",
    "dev.state": "State",
    "devstate.ok": "ok",
    "devstate.silent": "silent",
    "devstate.unknown": "unknown",
    "gwlist.since": "state since {time}",
    "severity.critical": "Critical",
    "severity.warning": "Warning",
    "severity.info": "Info",
    "alert.since": "since {time}",
    "alert.silenced": "silenced",
    "alert.silencedHint": "In a maintenance window: shown, but no notification is sent",
    "alert.inhibited": "inhibited",
    "alert.inhibitedHint": "Caused by alert {id}: shown, but not notified on its own",
    "alert.none": "No active alerts",
    "time.justNow": "just now",
    "time.rel": "{time}",
  },
};

let current = detectLang();
const listeners = [];

function detectLang() {
  const fromUrl = new URLSearchParams(location.search).get("lang");
  if (LANGS.includes(fromUrl)) return fromUrl;
  let stored = null;
  try { stored = localStorage.getItem(STORAGE_KEY); } catch { /* storage may be blocked */ }
  return LANGS.includes(stored) ? stored : "zh";
}

export function getLang() { return current; }
export function locale() { return LOCALE[current]; }

/** Translate `key`, replacing `{name}` placeholders from `params`. Unknown keys show as-is. */
export function t(key, params) {
  let s = STRINGS[current][key] ?? STRINGS.zh[key] ?? key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
  return s;
}

/** Translate a code-like value (e.g. a fault reason) with a prefix, falling back to the raw code. */
export function tCode(prefix, code) {
  const key = `${prefix}.${code}`;
  return key in STRINGS[current] ? STRINGS[current][key] : String(code);
}

export function setLang(lang) {
  if (!LANGS.includes(lang) || lang === current) return;
  current = lang;
  try { localStorage.setItem(STORAGE_KEY, lang); } catch { /* ignore */ }
  // An explicit click wins over a ?lang= in the address: drop it so a reload keeps the choice.
  const url = new URL(location.href);
  if (url.searchParams.has("lang")) {
    url.searchParams.delete("lang");
    history.replaceState(history.state, "", url);
  }
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) { listeners.push(fn); }

/** Translate the static markup below `root` and set <html lang>. */
export function applyStatic(root = document) {
  document.documentElement.lang = HTML_LANG[current];
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  const title = document.querySelector("title[data-i18n]");
  if (title) document.title = t(title.dataset.i18n);
}

/** Wire the "EN / 中文" button: it toggles between the two languages. */
export function bindLangButton(btn) {
  const label = () => {
    btn.textContent = t("lang.button");
    btn.setAttribute("aria-label", t("lang.switch"));
    btn.title = t("lang.switch");
  };
  label();
  onLangChange(label);
  btn.addEventListener("click", () => setLang(current === "zh" ? "en" : "zh"));
}

// ---- names from the API -------------------------------------------------------------------

export function siteName(s) { return current === "en" ? s.name_en || s.name : s.name; }
export function districtName(s) { return current === "en" ? s.district_en || s.district : s.district; }

// ---- time ---------------------------------------------------------------------------------

const fmtCache = new Map();
function fmt(kind, opts) {
  const key = `${current}:${kind}`;
  if (!fmtCache.has(key)) fmtCache.set(key, new Intl.DateTimeFormat(LOCALE[current], opts));
  return fmtCache.get(key);
}

function parse(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

// fmtTime runs for every seat event: memoise per language and timestamp (cleared when the day
// changes or the cache grows), as Intl formatting is the costliest part of a tile update.
const timeCache = new Map();
let timeCacheDay = "";

/** Local wall-clock time, with the date only when it is not today. */
export function fmtTime(iso) {
  const today = new Date().toDateString();
  if (today !== timeCacheDay || timeCache.size > 2000) { timeCache.clear(); timeCacheDay = today; }
  const key = `${current}|${iso}`;
  let out = timeCache.get(key);
  if (out === undefined) {
    const d = parse(iso);
    if (!d) return "—";
    out = d.toDateString() === today
      ? fmt("time", { hour: "2-digit", minute: "2-digit" }).format(d)
      : fmt("datetime", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }).format(d);
    timeCache.set(key, out);
  }
  return out;
}

/** Full local date and time, for tooltips. */
export function fmtFull(iso) {
  const d = parse(iso);
  return d ? fmt("full", { dateStyle: "medium", timeStyle: "medium" }).format(d) : "—";
}

const REL_STEPS = [["second", 60], ["minute", 60], ["hour", 24], ["day", 365]];

/** "3 分钟前" / "3 minutes ago". Under a minute (and clock skew into the future) reads as
 *  "just now": the ticker refreshes these texts only every 15 s, so seconds would be stale. */
export function relTime(iso, now = Date.now()) {
  const d = parse(iso);
  if (!d) return "—";
  let v = Math.round((now - d.getTime()) / 1000);
  if (v < 60) return t("time.justNow");
  let unit = "second";
  for (const [u, size] of REL_STEPS) {
    unit = u;
    if (v < size) break;
    if (u !== "day") v = Math.floor(v / size);
  }
  if (unit === "day" && v >= 365) { unit = "year"; v = Math.floor(v / 365); }
  const key = `${current}:rel`;
  if (!fmtCache.has(key)) fmtCache.set(key, new Intl.RelativeTimeFormat(LOCALE[current], { numeric: "always" }));
  return fmtCache.get(key).format(-v, unit);
}

// ---- safe DOM building (API strings only ever become text) --------------------------------

/** createElement shorthand. Children may be nodes or strings (appended as text). */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "data") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

/** Show a relative time that the ticker keeps fresh: data-ts holds the ISO time. */
export function setRel(node, iso, key) {
  node.dataset.ts = iso || "";
  node.dataset.tsKey = key;
  node.textContent = iso ? t(key, { time: relTime(iso) }) : "—";
  node.title = iso ? fmtFull(iso) : "";
}
export function tickRelTimes() {
  for (const node of document.querySelectorAll("[data-ts]")) {
    if (node.dataset.ts) node.textContent = t(node.dataset.tsKey, { time: relTime(node.dataset.ts) });
  }
}

applyStatic();
