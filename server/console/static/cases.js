// The cases page: every form with data-post sends its fields to the API as JSON (server/cases/api.py) and the page
// is shown again from the server. Field names with dots nest (checklist.lawful_body.ok); data-list checkboxes make a
// list, data-bool checkboxes a boolean, data-int an integer, data-optional an empty field left out; a data-file input
// is hashed (SHA-256) in the browser and only its hash is sent. Uses LANG, readJson and errorText from console.js.
"use strict";
(() => {
  const T = readJson("texts");
  const notice = document.getElementById("notice");
  const problem = document.getElementById("problem");

  function say(ok, message) {
    notice.textContent = ok ? message : "";
    problem.textContent = ok ? "" : message;
  }

  function put(body, name, value) {
    const parts = name.split(".");
    let at = body;
    for (const p of parts.slice(0, -1)) at = at[p] = at[p] || {};
    at[parts[parts.length - 1]] = value;
  }

  async function bodyOf(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.hasAttribute("data-list")) {
        const list = (el.name in body) ? body[el.name] : (body[el.name] = []);
        if (el.checked) list.push(el.value);
      } else if (el.hasAttribute("data-bool")) {
        put(body, el.name, el.checked);
      } else if (el.hasAttribute("data-int")) {
        put(body, el.name, Number(el.value || 0));
      } else if (el.hasAttribute("data-file")) {
        const file = el.files[0];
        if (file) {
          const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
          body.sha256 = Array.from(digest, b => b.toString(16).padStart(2, "0")).join("");
        }
      } else if (el.value === "" && el.hasAttribute("data-optional")) {
        continue;
      } else if (el.tagName !== "BUTTON") {
        put(body, el.name, el.value);
      }
    }
    if (body.party_name) {  // an individual party (当事人): the API takes a list
      body.parties = [{kind: "individual", name: body.party_name, ...(body.party_id_no ? {id_no: body.party_id_no} : {})}];
    }
    delete body.party_name;
    delete body.party_id_no;
    return body;
  }

  for (const input of document.querySelectorAll("input[data-file]")) {  // the chosen file's name beside its button
    const shown = input.parentElement.querySelector(".file-name");
    if (shown) input.addEventListener("change", () => { if (input.files[0]) shown.textContent = input.files[0].name; });
  }

  for (const form of document.querySelectorAll("form[data-post]")) {
    form.addEventListener("submit", async ev => {
      ev.preventDefault();
      const buttons = form.querySelectorAll("button");
      buttons.forEach(b => { b.disabled = true; });  // a double click sends once
      try {
        const r = await fetch(form.dataset.post, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(await bodyOf(form))});
        if (!r.ok) { say(false, await errorText(r)); buttons.forEach(b => { b.disabled = false; }); return; }
        const made = r.status === 204 ? null : await r.json();
        say(true, `${T.done} ${form.querySelector("button").textContent}`);
        const next = form.dataset.next === "case" && made && made.case_id ? `/cases?lang=${LANG}&case=${encodeURIComponent(made.case_id)}` : null;
        setTimeout(() => { if (next) location.assign(next); else location.reload(); }, 400);
      } catch (e) {
        say(false, LANG === "zh" ? "网络连接失败，请检查网络后重试。" : "No network connection: check the network and try again.");
        buttons.forEach(b => { b.disabled = false; });
      }
    });
  }
})();
