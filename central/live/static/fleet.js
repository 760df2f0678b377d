// Fleet page (/fleet): every gateway in one table, from GET /api/v1/fleet.
//
// Sorting and the district filter are the API's (?sort=, ?district=), so the page and
// `qihe fleet` list gateways in the same order; both are kept in this page's URL, so a view can
// be shared. The table is fetched again every REFRESH_MS. API strings only ever reach the page
// through textContent and attributes, never innerHTML.

const REFRESH_MS = 10_000;
const $ = (id) => document.getElementById(id);
const role = (name) => document.querySelector(`[data-role="${name}"]`);

const POWER_NOW = {
  under_voltage: "欠压 under-voltage",
  freq_capped: "限频 freq capped",
  throttled: "降频 throttled",
  soft_temp_limit: "温控限频 soft temp limit",
};
const POWER_PAST = {
  under_voltage_occurred: "曾欠压 under-voltage earlier",
  freq_capped_occurred: "曾限频 freq capped earlier",
  throttled_occurred: "曾降频 throttled earlier",
  soft_temp_limit_occurred: "曾温控限频 soft temp limit earlier",
};
const CONFIG_STATE = {
  local: "本地 local",
  applying: "应用中 applying",
  applied: "已应用 applied",
  rejected: "⚠ 已拒绝 rejected",
  rolled_back: "⚠ 已回滚 rolled back",
};
const STATE_TEXT = { online: "在线 online", offline: "离线 offline", unknown: "未知 unknown" };
/** A column that reads best largest first starts descending on its first click. */
const DESC_FIRST = new Set(["outbox", "drops", "link_errors", "cpu_temp", "disk", "power", "last_seen", "uptime"]);
const HOT_C = 80;
const FULL_PCT = 90;

const params = new URLSearchParams(location.search);
const view = { sort: params.get("sort") || "site", district: params.get("district") || "" };
let timer = 0;
let fetchGen = 0;
let authTried = false;

// ---- formatting ------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k === "title") node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

const DASH = "–";

function fmtDuration(s) {
  if (s === null || s === undefined) return DASH;
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}

function fmtClock(iso, nowIso) {
  if (!iso) return DASH;
  const at = new Date(iso), now = new Date(nowIso);
  const two = (n) => String(n).padStart(2, "0");
  const time = `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
  return at.toDateString() === now.toDateString()
    ? time : `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())} ${time}`;
}

function fmtAge(iso, nowIso) {
  if (!iso) return "从未上报 never";
  return `${fmtDuration(Math.max(0, Math.round((new Date(nowIso) - new Date(iso)) / 1000)))} 前 ago`;
}

function fmtNum(n) { return n === null || n === undefined ? DASH : n.toLocaleString("zh-CN"); }

function fmtGB(bytes) { return `${(bytes / 1e9).toFixed(1)} GB`; }

// ---- cells -----------------------------------------------------------------------------------

function stateCell(r) {
  const td = el("td", { class: "state", "data-state": r.state });
  if (r.stale) {
    td.append("⚠ 失联 stale");
    if (r.state === "offline") td.append(el("span", { class: "sub", text: STATE_TEXT.offline }));
  } else {
    td.textContent = STATE_TEXT[r.state] || r.state;
  }
  return td;
}

function powerCell(r) {
  const td = el("td", { class: "power", "data-power": r.power ?? "none" });
  if (r.power === null || r.power === undefined) { td.textContent = DASH; return td; }
  td.title = `get_throttled = 0x${r.throttled.toString(16)}`;
  if (r.power === "ok") { td.textContent = "正常 OK"; return td; }
  const table = r.power === "now" ? POWER_NOW : POWER_PAST;
  const words = r.power_flags.filter((f) => f in table).map((f) => table[f]);
  td.textContent = (r.power === "now" ? "⚠ " : "") + words.join(" · ");
  return td;
}

function configCell(r) {
  const td = el("td", {
    class: "config", "data-config": r.config_state ?? "none",
    text: r.config_version || r.config_hash || DASH,
    title: r.config_error || (r.config_hash ? `hash ${r.config_hash}` : undefined),
  });
  if (r.config_state) td.append(el("span", { class: "sub", text: CONFIG_STATE[r.config_state] || r.config_state }));
  return td;
}

function numCell(value, extra = {}) {
  return el("td", { class: `n ${extra.class || ""}`.trim(), text: fmtNum(value), title: extra.title });
}

function row(r, at) {
  const tr = el("tr", {
    "data-gateway": `${r.site}/${r.gateway}`,
    "data-stale": String(r.stale),
    class: r.stale ? "stale" : "",
  });
  const site = el("td", { class: "site" }, r.site_name || r.site);
  if (r.site_name) site.append(el("span", { class: "sub", text: r.site }));
  const temp = r.cpu_temp_c;
  const disk = el("td", { class: "n disk" });
  if (r.disk_used_pct === null) disk.textContent = DASH;
  else {
    disk.textContent = `${r.disk_used_pct}%`;
    disk.append(el("span", { class: "sub", text: `${fmtGB(r.disk_free_bytes)} 可用 free` }));
    if (r.disk_used_pct >= FULL_PCT) disk.classList.add("full");
  }
  tr.append(
    site,
    el("td", { class: "gateway", text: r.gateway }),
    el("td", { class: "district", text: r.district || DASH }),
    stateCell(r),
    el("td", { class: "version", text: r.version || DASH }),
    configCell(r),
    el("td", {
      class: "n uptime", text: fmtDuration(r.uptime_s),
      title: r.host_uptime_s === null ? undefined : `主机 host ${fmtDuration(r.host_uptime_s)}`,
    }),
    el("td", { class: "last-seen", text: fmtClock(r.last_seen, at), title: fmtAge(r.last_seen, at) }),
    numCell(r.outbox, { class: "outbox" }),
    numCell(r.drops, { class: "drops" }),
    numCell(r.link_errors, { class: "link-errors", title: `${r.links} 条链路 links` }),
    el("td", {
      class: `n cpu-temp${temp !== null && temp >= HOT_C ? " hot" : ""}`,
      text: temp === null ? DASH : `${temp.toFixed(1)} °C`,
    }),
    disk,
    powerCell(r),
  );
  return tr;
}

// ---- rendering -------------------------------------------------------------------------------

function render(fleet) {
  const select = role("district");
  const options = [el("option", { value: "", text: "全部城区 All districts" })];
  for (const d of fleet.districts) options.push(el("option", { value: d, text: d }));
  if (view.district && !fleet.districts.includes(view.district)) {
    options.push(el("option", { value: view.district, text: view.district }));
  }
  select.replaceChildren(...options);
  select.value = view.district;

  role("rows").replaceChildren(...fleet.gateways.map((r) => row(r, fleet.at)));
  const count = (name, n) => { const b = role(name); b.textContent = String(n); b.dataset.count = String(n); };
  count("total", fleet.total);
  count("shown", fleet.gateways.length);
  count("stale", fleet.stale);
  count("power", fleet.gateways.filter((r) => r.power === "now").length);
  const empty = role("empty");
  empty.hidden = fleet.gateways.length > 0;
  empty.textContent = fleet.total ? "没有符合条件的网关。No gateway matches." : "尚无网关上报。No gateway has reported yet.";

  const column = view.sort.replace(/^-/, "");
  for (const th of document.querySelectorAll("th[data-col]")) {
    if (th.dataset.col === column) th.setAttribute("aria-sort", view.sort.startsWith("-") ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
}

function setConn(state) {
  const conn = role("conn");
  conn.dataset.state = state;
  conn.querySelector(".conn-text").textContent =
    { live: "实时 live", connecting: "连接中 connecting", offline: "已断开 offline" }[state];
}

// ---- fetching --------------------------------------------------------------------------------

function apiUrl() {
  const q = new URLSearchParams({ sort: view.sort });
  if (view.district) q.set("district", view.district);
  return `/api/v1/fleet?${q}`;
}

function keepInUrl() {
  const q = new URLSearchParams();
  if (view.sort !== "site") q.set("sort", view.sort);
  if (view.district) q.set("district", view.district);
  history.replaceState(null, "", `${location.pathname}${q.size ? `?${q}` : ""}`);
}

async function load() {
  clearTimeout(timer);
  const gen = ++fetchGen;
  try {
    const res = await fetch(apiUrl(), { headers: { Accept: "application/json" }, cache: "no-store" });
    if (gen !== fetchGen) return; // a newer request is on its way
    if (res.status === 401) { setConn("offline"); showAuth(); return; }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const fleet = await res.json();
    if (gen !== fetchGen) return;
    render(fleet);
    setConn("live");
  } catch {
    if (gen !== fetchGen) return;
    setConn("offline");
  }
  timer = setTimeout(load, REFRESH_MS);
}

// ---- controls --------------------------------------------------------------------------------

for (const th of document.querySelectorAll("th[data-col]")) {
  th.querySelector("button").addEventListener("click", () => {
    const col = th.dataset.col;
    const current = view.sort.replace(/^-/, "");
    if (current === col) view.sort = view.sort.startsWith("-") ? col : `-${col}`;
    else view.sort = DESC_FIRST.has(col) ? `-${col}` : col;
    keepInUrl();
    load();
  });
}

role("district").addEventListener("change", (ev) => {
  view.district = ev.target.value;
  keepInUrl();
  load();
});

// ---- operator token (as on the operator page: the qihe_operator cookie) ----------------------

function showAuth() {
  $("auth").hidden = false;
  $("auth-wrong").hidden = !authTried;
  $("auth-token").focus();
}

function cookieValue(tok) {
  if (/^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/.test(tok)) return tok;
  return `"${tok.replace(/["\\,;]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`)}"`;
}

$("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `qihe_operator=${cookieValue($("auth-token").value.trim())}; path=/; max-age=2592000; SameSite=Strict${secure}`;
  authTried = true;
  $("auth").hidden = true;
  load();
});

load();
