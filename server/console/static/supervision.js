// The supervision page: each button asks the API (server/console/supervision_api.py) and the page is shown again
// from the server; what a button needs (a report, a reason, a letter's text) is asked in one card below.
// Uses LANG, readJson and errorText from console.js.
"use strict";
(() => {
  const T = readJson("texts");
  const notice = document.getElementById("notice");
  const problem = document.getElementById("problem");
  const card = document.getElementById("act-card");
  const form = document.getElementById("act-form");
  const submit = document.getElementById("act-submit");
  const text = document.getElementById("text");
  const API = "/api/v1/supervision";
  // The file chooser is a labelled button: the names of the files picked show beside it.
  document.getElementById("files").addEventListener("change", e => {
    document.getElementById("files-name").textContent = [...e.target.files].map(f => f.name).join("、");
  });
  let pending = null;  // {act, id}

  function say(ok, message) {
    notice.textContent = ok ? message : "";
    problem.textContent = ok ? "" : message;
  }

  // After an action the page is shown again; a finding opened from an alert leaves the alert out of the address
  // (its form would offer the same alert again).
  async function post(url, body, done, next) {
    try {
      const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      if (!r.ok) { say(false, await errorText(r)); return false; }
      say(true, `${T.done} ${done}`);
      setTimeout(() => { if (next) location.assign(next); else location.reload(); }, 600);
      return true;
    } catch (e) {
      say(false, LANG === "zh" ? "网络连接失败，请检查网络后重试。" : "No network connection: check the network and try again.");
      return false;
    }
  }

  // What each action asks for, where it goes, and what its body is.
  const ACTS = {
    reply: {title: T.reply, caption: T.report, files: true, url: id => `${API}/letters/${id}/reply`, body: async () => ({text: text.value, attachments: await attached()})},
    return: {title: T.return, caption: T.return_note, url: id => `${API}/letters/${id}/return`, body: () => ({note: text.value})},
    remark: {title: T.remark, caption: T.remark, url: id => `${API}/findings/${id}/remarks`, body: () => ({text: text.value})},
    close: {title: T.close, caption: T.close_note, url: id => `${API}/findings/${id}/close`, body: () => ({note: text.value})},
    opinion: {title: T.issue_opinion, letter: true, url: id => `${API}/findings/${id}/letters`, body: () => letterBody("opinion")},
    decision: {title: T.issue_decision, letter: true, url: id => `${API}/findings/${id}/letters`, body: () => letterBody("decision")},
  };

  // The report's files, as the API takes them (base64 in the JSON body).
  async function attached() {
    const out = [];
    for (const file of document.getElementById("files").files) {
      const buf = new Uint8Array(await file.arrayBuffer());
      let s = "";
      for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
      out.push({filename: file.name, content_type: file.type, data_base64: btoa(s)});
    }
    return out;
  }

  function letterBody(kind) {
    const v = id => document.getElementById(id).value;
    return {kind, issuer: v("issuer"), facts: v("facts"), basis: v("basis"), requirements: v("requirements"), deadline_days: Number(v("deadline-days"))};
  }

  function ask(act, id) {
    const a = ACTS[act];
    pending = {act, id};
    document.getElementById("act-title").textContent = `${a.title} · ${id}`;
    document.getElementById("letter-fields").hidden = !a.letter;
    document.getElementById("text-label").hidden = !!a.letter;
    document.getElementById("files-label").hidden = !a.files;
    document.getElementById("files").value = "";
    document.getElementById("files-name").textContent = "";
    document.getElementById("text-caption").textContent = a.caption || "";
    submit.textContent = a.letter ? T.send : (act === "reply" ? T.submit : a.title);
    text.value = "";
    card.hidden = false;
    (a.letter ? document.getElementById("issuer") : text).focus();
  }

  document.querySelector("main").addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-act]");
    if (!button) return;
    if (button.dataset.act === "from-flag") {  // a flagged 12345 ticket: its finding says what the flag says
      button.disabled = true;
      if (!(await post(`${API}/hotline-flags/${encodeURIComponent(button.dataset.id)}/finding`, {}, T.open_from_flag))) button.disabled = false;
      return;
    }
    if (button.dataset.act === "from-review") {  // a failed case-file review: the finding names the review
      button.disabled = true;
      const body = {agency_id: button.dataset.agency, reason: button.dataset.reason, source: "case_review", source_ref: button.dataset.id};
      if (!(await post(`${API}/findings`, body, T.open_from_flag))) button.disabled = false;
      return;
    }
    if (button.dataset.act === "accept") {
      button.disabled = true;  // one click, one request
      if (!(await post(`${API}/letters/${button.dataset.id}/accept`, {}, T.accept))) button.disabled = false;
      return;
    }
    ask(button.dataset.act, button.dataset.id);
  });
  document.getElementById("act-cancel").addEventListener("click", () => { card.hidden = true; pending = null; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!pending) return;
    const a = ACTS[pending.act];
    submit.disabled = true;
    try {
      if (await post(a.url(pending.id), await a.body(), a.title)) card.hidden = true;
    } finally {
      submit.disabled = false;
    }
  });
  const newFinding = document.getElementById("finding-form");
  if (newFinding) {
    newFinding.addEventListener("submit", async (e) => {
      e.preventDefault();
      const code = document.getElementById("finding-code").value.trim();
      const body = {agency_id: document.getElementById("finding-agency").value, reason: document.getElementById("finding-reason").value};
      if (code) body.credit_code = code;
      if (newFinding.dataset.alert) { body.source = "alert"; body.source_ref = newFinding.dataset.alert; }
      const button = newFinding.querySelector("button");
      button.disabled = true;
      const next = newFinding.dataset.alert ? `/supervision?lang=${LANG}` : null;
      try { await post(`${API}/findings`, body, T.new_finding, next); } finally { button.disabled = false; }
    });
  }
})();
