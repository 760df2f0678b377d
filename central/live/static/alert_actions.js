// Operators' orders to the alert engine on the site view (central/live/alerts_api.py):
// acknowledge an alert with a note, silence a rule at the site for a while, end a silence.
// The page only sends the order (202); the engine's answer comes back the way every alert
// does (the alert list redrawn with its "已确认 Acknowledged" badge) and in the silences list.
// Shown only when the service has an operator account (GET /api/v1/silences: can_order).
import { el } from "/static/i18n.js";

const list = document.getElementById("alerts");
const panel = document.getElementById("alerts-panel");
const DURATIONS = [["30 分钟 30 min", 1800], ["2 小时 2 h", 7200], ["1 天 1 day", 86400], ["7 天 7 days", 604800]];
let info = { rules: [], can_order: false, silences: [] };
let shownFor = null;

const siteId = () => {
  const m = location.hash.match(/^#\/site\/(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
};

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await response.json(); } catch { /* an empty or non-JSON answer */ }
  if (!response.ok) {
    const detail = data && data.detail;
    throw new Error(typeof detail === "string" ? detail : `HTTP ${response.status}`);
  }
  return data;
}

function decorate(li) {
  const site = siteId();
  if (!site || !info.can_order || !li.dataset.alert || li.dataset.acked) return;
  if (li.querySelector("[data-role=ack-form]")) return;
  const note = el("input", { type: "text", maxlength: "500", "data-role": "ack-note",
    placeholder: "备注（可选）Note (optional)", "aria-label": "备注 Note" });
  const button = el("button", { type: "submit", "data-role": "ack", text: "确认 Acknowledge" });
  const result = el("span", { class: "muted order-result", "data-role": "ack-result", "aria-live": "polite" });
  const form = el("form", { class: "ack-form", "data-role": "ack-form" }, note, button, result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    result.textContent = "发送中… sending…";
    try {
      const path = `/api/v1/alerts/${encodeURIComponent(site)}/${encodeURIComponent(li.dataset.alert)}/ack`;
      result.textContent = (await api("POST", path, { note: note.value.trim() })).text;
    } catch (err) {
      result.textContent = `失败 failed: ${err.message}`;
      button.disabled = false;
    }
  });
  li.append(form);
}

function fmt(iso) {
  const d = new Date(iso);
  return d.toLocaleString("zh-CN", { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function silenceSection(site) {
  let section = panel.querySelector("[data-role=silences]");
  if (!section) {
    section = el("div", { class: "silences", "data-role": "silences" });
    panel.append(section);
  }
  const rows = info.silences.map((s) => {
    const end = el("button", { type: "button", "data-role": "unsilence", text: "解除 Unsilence" });
    end.addEventListener("click", async () => {
      end.disabled = true;
      try { await api("DELETE", `/api/v1/silences/${encodeURIComponent(site)}/${encodeURIComponent(s.id)}`); }
      catch (err) { end.disabled = false; end.title = err.message; }
      refreshSoon();
    });
    return el("li", { "data-silence": s.id, "data-rule": s.rule },
      el("b", { text: s.rule }), el("span", { text: `至 until ${fmt(s.until)}` }),
      el("span", { class: "muted", text: `${s.by}${s.note ? `：${s.note}` : ""}` }), info.can_order ? end : "");
  });
  const children = [el("h4", { text: "静默 Silences" }),
    rows.length ? el("ul", { class: "silence-list", "data-role": "silence-list" }, ...rows)
      : el("p", { class: "muted", "data-role": "no-silences", text: "没有生效的静默 No active silences" })];
  if (info.can_order) {
    const rule = el("select", { "data-role": "silence-rule", "aria-label": "规则 Rule" },
      ...info.rules.map((r) => el("option", { value: r, text: r })));
    const duration = el("select", { "data-role": "silence-duration", "aria-label": "时长 Duration" },
      ...DURATIONS.map(([label, seconds]) => el("option", { value: String(seconds), text: label })));
    const note = el("input", { type: "text", maxlength: "500", "data-role": "silence-note",
      placeholder: "原因 Reason", "aria-label": "原因 Reason" });
    const button = el("button", { type: "submit", "data-role": "silence", text: "静默 Silence" });
    const result = el("span", { class: "muted order-result", "aria-live": "polite" });
    const form = el("form", { class: "silence-form", "data-role": "silence-form" }, rule, duration, note, button, result);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      try {
        result.textContent = (await api("POST", "/api/v1/silences", {
          site, rule: rule.value, duration: Number(duration.value), note: note.value.trim() })).text;
        refreshSoon();
      } catch (err) { result.textContent = `失败 failed: ${err.message}`; }
      button.disabled = false;
    });
    children.push(form);
  }
  section.replaceChildren(...children);
}

async function refresh() {
  const site = siteId();
  if (!site) { shownFor = null; return; }
  try {
    info = await api("GET", `/api/v1/silences?site=${encodeURIComponent(site)}`);
  } catch { return; } // not signed in yet: the page asks for the token itself
  shownFor = site;
  silenceSection(site);
  list.querySelectorAll("li.alert").forEach(decorate);
}

let timers = [];
function refreshSoon() {
  // The engine answers at its next evaluation (about a second): look a few times.
  timers.forEach(clearTimeout);
  timers = [300, 1200, 3000].map((ms) => setTimeout(refresh, ms));
}

new MutationObserver(() => {
  if (siteId() !== shownFor) { refresh(); return; }
  list.querySelectorAll("li.alert").forEach(decorate);
}).observe(list, { childList: true });
window.addEventListener("hashchange", refresh);
refresh();
