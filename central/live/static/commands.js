// Commands to the open site's boards (docs/commands.md): identify, ping, reboot, interval.
//
// Shown only when the service has a commands account (GET /api/v1/commands says enabled) and
// this browser holds the operator token (the API answers 401 otherwise; the cookie the operator
// page sets is sent with every request). The boards are those of the site view's device table
// (operator.js keeps them in window.qiheLive.state.detail.devices). Each click sends one command
// and waits for the gateway's reply; the last few results stay listed, newest first.
// API strings only ever become text (el / textContent), never markup.

import { getLang, onLangChange, el } from "/static/i18n.js";

const TEXT = {
  zh: {
    title: "板子命令", board: "板子", seconds: "秒", identify: "闪灯识别", ping: "连通测试",
    reboot: "重启", interval: "设置上报间隔", sending: "发送中…", none: "此站点没有传感器板",
    confirmReboot: "确定重启板子 {device}？", roundTrip: "往返 {ms} 毫秒", failed: "发送失败",
  },
  en: {
    title: "Board commands", board: "Board", seconds: "s", identify: "Identify (blink)",
    ping: "Ping", reboot: "Reboot", interval: "Set report interval", sending: "Sending…",
    none: "No sensor boards at this site", confirmReboot: "Reboot board {device}?",
    roundTrip: "round trip {ms} ms", failed: "Could not send",
  },
};
const LOG_SIZE = 6;

const $ = (id) => document.getElementById(id);
const panel = document.querySelector('[data-role="commands-panel"]');
const select = $("cmd-device");
const secondsInput = $("cmd-seconds");
const log = $("cmd-log");
let enabled = false;
let busy = false;

function tr(key, params) {
  let s = (TEXT[getLang()] || TEXT.zh)[key] ?? key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
  return s;
}

function label() {
  for (const node of panel.querySelectorAll("[data-cmd-text]")) node.textContent = tr(node.dataset.cmdText);
}

function siteId() {
  const m = location.hash.match(/^#\/site\/(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

/** The open site's boards that sit behind a gateway: "gateway/device" keys. */
function boards() {
  const detail = window.qiheLive?.state?.detail;
  const devices = detail && detail.site && detail.site.id === siteId() ? detail.devices || [] : [];
  return devices.filter((d) => d.gateway).map((d) => ({ gateway: d.gateway, id: d.id }));
}

function fillBoards() {
  const list = boards();
  const chosen = select.value;
  select.replaceChildren(...list.map((b) => el("option", { value: `${b.gateway}/${b.id}`, text: `${b.id} (${b.gateway})` })));
  if (list.some((b) => `${b.gateway}/${b.id}` === chosen)) select.value = chosen;
  const empty = list.length === 0;
  panel.dataset.empty = empty ? "yes" : "no";
  for (const b of panel.querySelectorAll("button[data-command]")) b.disabled = empty || busy;
  $("cmd-none").hidden = !empty;
}

function show(entry) {
  log.prepend(entry);
  while (log.children.length > LOG_SIZE) log.lastElementChild.remove();
}

async function send(command) {
  const site = siteId();
  const [gateway, device] = (select.value || "").split("/");
  if (!site || !gateway || !device || busy) return;
  if (command === "reboot" && !window.confirm(tr("confirmReboot", { device }))) return;
  const body = { command };
  if (command === "interval") body.seconds = Number(secondsInput.value);
  if (command === "identify") body.seconds = 10;
  busy = true;
  fillBoards();
  const pending = el("li", { data: { result: "sending" }, text: `${device} ${command}: ${tr("sending")}` });
  show(pending);
  try {
    const url = `/api/v1/commands/${[site, gateway, device].map(encodeURIComponent).join("/")}`;
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const why = typeof data.detail === "string" ? data.detail : `HTTP ${res.status}`;
      pending.dataset.result = "error";
      pending.textContent = `${device} ${command}: ${tr("failed")} (${why})`;
      return;
    }
    pending.dataset.result = data.result;
    const what = data.seconds == null ? data.command : `${data.command} ${data.seconds}`;
    let line = `${data.device} ${what}: ${data.text}`;
    if (data.detail) line += ` (${data.detail})`;
    if (typeof data.round_trip_ms === "number") line += ` · ${tr("roundTrip", { ms: Math.round(data.round_trip_ms) })}`;
    pending.textContent = line;
  } catch {
    pending.dataset.result = "error";
    pending.textContent = `${device} ${command}: ${tr("failed")}`;
  } finally {
    busy = false;
    fillBoards();
  }
}

/** Ask once whether commands are on; again later while the answer is "log in first". */
async function probe() {
  if (enabled) return;
  try {
    const res = await fetch("/api/v1/commands", { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!res.ok) return;
    enabled = (await res.json()).enabled === true;
  } catch { return; }
  panel.hidden = !enabled;
  if (enabled) fillBoards();
}

label();
onLangChange(label);
for (const b of panel.querySelectorAll("button[data-command]")) b.addEventListener("click", () => send(b.dataset.command));
new MutationObserver(() => enabled && fillBoards()).observe($("devices"), { childList: true, subtree: true });
window.addEventListener("hashchange", () => { log.replaceChildren(); probe(); });
probe();
setInterval(probe, 15_000);
