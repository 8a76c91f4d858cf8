// Shared by every console page: the page's language, HTML escaping, times in China time, sign-out.
// Loaded from /static because the Content-Security-Policy runs no inline script; page data comes
// from <script type="application/json"> blocks, read with readJson().
"use strict";
const LANG = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
function readJson(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
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
  return detail || (LANG === "zh" ? `请求失败（${r.status}）` : `Request failed (${r.status})`);
}
const logoutLink = document.getElementById("logout");
if (logoutLink) {
  logoutLink.addEventListener("click", async (e) => {
    e.preventDefault();
    await fetch("/api/v1/auth/logout", {method: "POST"});
    location.href = "/login?lang=" + LANG;
  });
}
