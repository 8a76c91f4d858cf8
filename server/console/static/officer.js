// The officer's phone page: scan a door code from a photo, see the decision, end inspections with a result.
"use strict";
(() => {
  const T = readJson("texts");
  const ME = readJson("page-data");
  const RESULTS = LANG === "zh" ? {no_violation: "未发现问题", rectification_ordered: "责令整改", case_opened: "立案", referred: "移送", not_completed: "未完成"}
    : {no_violation: "no violation", rectification_ordered: "rectification ordered", case_opened: "case opened", referred: "referred", not_completed: "not completed"};
  const sameDay = (ms, today) => new Date(ms).toLocaleDateString("en-CA", {timeZone: "Asia/Shanghai"}) === today;

  async function mine() {
    const r = await fetch("/api/v1/inspections?limit=50"); if (!r.ok) return;
    const today = new Date().toLocaleDateString("en-CA", {timeZone: "Asia/Shanghai"});
    const rows = (await r.json()).filter(i => sameDay(i.opened_ms, today));
    document.getElementById("mine").innerHTML = rows.length ? rows.map(i => {
      const myPart = i.parts.find(p => p.officer_id === ME.officer_id);
      const open = myPart && !myPart.ended_ms;
      return `<div class="decision ${open ? "allowed" : ""}" data-inspection="${esc(i.inspection_id)}"><b>${esc(i.enterprise_name || i.credit_code)}</b> · ${esc(i.field)}` +
        `<div class="muted">${when(i.opened_ms)} · ${esc(i.parts.map(p => p.agency_id).join("、"))} · ${esc(i.status)}</div>` +
        (open ? `<div class="actions"><select class="result">${Object.entries(RESULTS).map(([k, v]) => `<option value="${k}">${v}</option>`).join("")}</select> ` +
                `<button class="end" data-id="${esc(i.inspection_id)}">${T.end}</button></div>` : `<div class="muted">${T.result}: ${esc(RESULTS[myPart?.result] || myPart?.result || "–")}</div>`) + `</div>`;
    }).join("") : `<div class="muted">${T.none}</div>`;
    document.querySelectorAll("button.end").forEach(b => b.addEventListener("click", async () => {
      b.disabled = true;  // a double tap ends the part once
      const result = b.parentElement.querySelector(".result").value;
      await fetch(`/api/v1/inspections/${encodeURIComponent(b.dataset.id)}/end`, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({result})});
      mine();
    }));
  }

  const submit = document.getElementById("scan-submit");
  document.getElementById("scan").addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = document.getElementById("decision");
    const refuse = (text) => { box.innerHTML = `<div class="decision refused" id="scan-error" role="alert">${esc(text)}</div>`; };
    submit.disabled = true;  // one scan per tap, however often it is tapped
    try {
      const form = new FormData();
      const input = document.getElementById("photo");
      const photo = await shrinkPhoto(input.files[0]);
      if (!photoFits(input, photo)) { refuse(T.photo_too_large); return; }
      form.append("photo", photo, photo.name || "photo.jpg");
      form.append("field", document.getElementById("field").value);
      form.append("reason", document.getElementById("reason").value);
      let r;
      try {
        r = await fetch("/api/v1/scans/photo", {method: "POST", body: form});
      } catch (err) {
        refuse(T.offline_retry);
        return;
      }
      if (!r.ok) { refuse(await uploadErrorText(r, T)); return; }
      const d = await r.json();
      box.innerHTML = `<div class="decision ${esc(d.outcome)}" id="decision-box" data-outcome="${esc(d.outcome)}" data-code="${esc(d.code)}"><b>${T.decision}: ${esc(d.enterprise_name || "")}</b>` +
        `<p>${esc(LANG === "zh" ? d.message_zh : d.message_en)}</p>` +
        d.warnings.map(w => `<p class="warn">${esc(LANG === "zh" ? w.message_zh : w.message_en)}</p>`).join("") + `</div>`;
      mine();
    } finally {
      submit.disabled = false;
    }
  });
  mine();
})();
