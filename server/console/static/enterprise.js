// The enterprise's page: who inspected my enterprise, looked up with my own door code (text or photo).
// Anyone holding the code sees the days, agencies and fields; results only the enterprise's signed-in account.
"use strict";
(() => {
  const T = readJson("texts");
  async function b64(file) {
    const buf = new Uint8Array(await file.arrayBuffer());
    let s = "";
    for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    return btoa(s);
  }
  const submit = document.getElementById("query-submit");
  const error = document.getElementById("error");
  document.getElementById("query").addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const input = document.getElementById("photo");
      const file = input.files[0] && await shrinkPhoto(input.files[0]);
      if (!photoFits(input, file)) { error.textContent = T.photo_too_large; return; }
      const body = file ? {photo_base64: await b64(file)} : {code_text: document.getElementById("code_text").value.trim()};
      let r;
      try {
        r = await fetch(`/api/v1/enterprise-view?lang=${LANG}`, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      } catch (err) {
        error.textContent = T.offline_retry;
        return;
      }
      if (!r.ok) { error.textContent = await uploadErrorText(r, T); return; }
      const d = await r.json();
      error.textContent = "";
      document.getElementById("name").textContent = `${d.name} (${d.credit_code})`;
      document.getElementById("result-head").hidden = !d.outcomes_shown;
      document.getElementById("outcomes-hidden").hidden = d.outcomes_shown;
      const cols = d.outcomes_shown ? 4 : 3;
      document.getElementById("rows").innerHTML = d.inspections.length ? d.inspections.map(i =>
        `<tr><td>${esc(i.date)}</td><td>${esc(i.agencies.join("、"))}</td><td>${esc(i.fields.join("、"))}</td>` +
        (d.outcomes_shown ? `<td class="result">${esc((i.outcomes || []).map(o => `${o.agency}：${o.result_label}`).join("；"))}</td>` : "") + `</tr>`).join("")
        : `<tr><td colspan="${cols}" class="muted">${T.none}</td></tr>`;
    } finally {
      submit.disabled = false;
    }
  });
})();
