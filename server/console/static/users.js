// The account page: disable, enable and reset the password of the accounts listed (the server decides
// who may; the rows are rendered on the server). Uses LANG, readJson and errorText from console.js.
"use strict";
(() => {
  const T = readJson("texts");
  const notice = document.getElementById("notice");
  const problem = document.getElementById("problem");
  const card = document.getElementById("reset-card");
  const form = document.getElementById("reset-form");
  const field = document.getElementById("new-password");
  let resetting = null;

  function say(ok, text) {
    notice.textContent = ok ? text : "";
    problem.textContent = ok ? "" : text;
  }

  // The row after an answer: state, sessions and which button is offered.
  function show(row, user) {
    const disabled = user.disabled_ms !== null;
    row.dataset.state = disabled ? "disabled" : "active";
    const state = row.querySelector(".state");
    state.textContent = disabled ? `${T.disabled} ${when(user.disabled_ms)}` : T.active;
    state.className = "state " + (disabled ? "bad" : "ok");
    row.querySelector(".sessions").textContent = String(user.active_sessions);
    if (user.last_action) {
      row.querySelector(".last-change").textContent = `${L("account_action", user.last_action)} · ${user.last_by} · ${when(user.last_at_ms)}`;
    }
    row.querySelector(".disable").hidden = disabled;
    row.querySelector(".enable").hidden = !disabled;
  }

  async function act(row, action, body) {
    const name = row.dataset.username;
    const buttons = row.querySelectorAll("button");
    buttons.forEach(b => { b.disabled = true; });  // one click, one request
    try {
      const r = await fetch(`/api/v1/users/${encodeURIComponent(name)}/${action}`, {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {}),
      });
      if (!r.ok) { say(false, await errorText(r)); return false; }
      show(row, await r.json());
      const done = {disable: T.done_disabled, enable: T.done_enabled, "reset-password": T.done_reset}[action];
      say(true, `${done} ${name}`);
      return true;
    } catch (e) {
      say(false, LANG === "zh" ? "网络连接失败，请检查网络后重试。" : "No network connection: check the network and try again.");
      return false;
    } finally {
      buttons.forEach(b => { b.disabled = false; });
    }
  }

  document.getElementById("users").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const row = button.closest("tr");
    if (button.classList.contains("disable")) act(row, "disable");
    else if (button.classList.contains("enable")) act(row, "enable");
    else if (button.classList.contains("reset")) {
      resetting = row;
      document.getElementById("reset-user").textContent = row.dataset.username;
      field.value = "";
      card.hidden = false;
      field.focus();
    }
  });
  document.getElementById("reset-cancel").addEventListener("click", () => { card.hidden = true; resetting = null; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!resetting) return;
    const submit = document.getElementById("reset-submit");
    submit.disabled = true;
    try {
      if (await act(resetting, "reset-password", {password: field.value})) { card.hidden = true; resetting = null; field.value = ""; }
    } finally {
      submit.disabled = false;
    }
  });
})();
