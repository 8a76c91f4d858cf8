// Shared by every console page: the page's language, labels of ids, HTML escaping, times in China time, sign-out.
// Loaded from /static because the Content-Security-Policy runs no inline script; page data comes
// from <script type="application/json"> blocks, read with readJson().
"use strict";
const LANG = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
function readJson(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}
// Every id a person reads is a label (server/console/labels.py, and the registers' names of agencies and fields),
// from the page's "labels" block: L("role", "supervisor") is 监督人员. An id with no label never shows raw.
const LABELS = readJson("labels") || {};
function L(group, id) {
  const g = LABELS[group] || {};
  if (id !== null && id !== undefined && Object.prototype.hasOwnProperty.call(g, id)) return g[id];
  return LANG === "zh" ? "（未知）" : "(unknown)";
}
// The part of an API message "中文 / english" for the page's language.
function localized(message) {
  const s = String(message ?? ""), i = s.indexOf(" / ");
  if (i < 0) return s;
  return (LANG === "zh" ? s.slice(0, i) : s.slice(i + 3)).trim();
}
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function when(ms) {
  if (!ms) return "–";
  return new Date(ms).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {hour12: false, timeZone: "Asia/Shanghai"});
}
// The answer's error text, Chinese first; a body that is not JSON (a proxy's error page) gets a plain message.
async function errorText(r) {
  let detail = "";
  try { detail = (await r.json()).detail || ""; } catch (e) { detail = ""; }
  if (typeof detail !== "string") detail = "";  // a validator's list of problems: say it plainly below
  detail = localized(detail);
  // A message in English only (the web framework's own, a proxy's) is not shown on a Chinese page.
  if (LANG === "zh" && detail && !/[\u4e00-\u9fff]/.test(detail)) {
    detail = r.status === 400 || r.status === 422 ? "填写的内容有误，请检查后重试。" : "";
  }
  return detail || (LANG === "zh" ? `请求失败（${r.status}）` : `Request failed (${r.status})`);
}
// The language switch keeps the page's other parameters (a period, a filter): only the language changes.
const langSwitch = document.getElementById("lang-switch");
if (langSwitch) {
  const u = new URL(location.href);
  u.searchParams.set("lang", LANG === "zh" ? "en" : "zh");
  langSwitch.href = u.pathname + u.search;
}
const logoutLink = document.getElementById("logout");
if (logoutLink) {
  logoutLink.addEventListener("click", async (e) => {
    e.preventDefault();
    await fetch("/api/v1/auth/logout", {method: "POST"});
    location.href = "/login?lang=" + LANG;
  });
}
