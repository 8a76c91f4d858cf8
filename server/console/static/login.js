// The sign-in page: each role goes to its own page.
"use strict";
(() => {
  const T = readJson("texts");
  const HOME = {supervisor: "/", agency_admin: "/", officer: "/officer", enterprise: "/enterprise", monitor: "/supervision"};
  document.getElementById("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {username: document.getElementById("username").value, password: document.getElementById("password").value};
    const r = await fetch("/api/v1/auth/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (r.ok) { const me = await r.json(); location.href = (HOME[me.role] || "/") + "?lang=" + LANG; return; }
    document.getElementById("error").textContent = r.status === 401 ? T.wrong : await errorText(r);
  });
})();
