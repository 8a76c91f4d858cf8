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
  // The owner may export the evidence bundle (证据包) of each inspection of its own, to check offline.
  const exportLink = i => i.inspection_id
    ? `<br><a class="bundle" href="/api/v1/evidence/bundles/inspection/${encodeURIComponent(i.inspection_id)}" download>${LANG === "zh" ? "导出证据包" : "Export evidence bundle"}</a>` : "";
  // The owner rates each ended inspection once (1 to 5 and a comment); the server checks both.
  function ratingCell(i) {
    if (i.rating) return `<span class="ok">${"★".repeat(i.rating)}${"☆".repeat(5 - i.rating)} ${esc(T.rated)}</span>`;
    if (!i.inspection_id || (i.outcomes || []).some(o => !o.result)) return "–";
    const stars = [5, 4, 3, 2, 1].map(n => `<option value="${n}">${"★".repeat(n)}</option>`).join("");
    return `<form class="rate inline" data-inspection="${esc(i.inspection_id)}"><label><span class="sr-only">${esc(T.rating)}</span><select name="score">${stars}</select></label>` +
      ` <label>${esc(T.rating_comment)}<input name="comment" maxlength="1000"></label> <button type="submit">${esc(T.rate)}</button></form>`;
  }
  document.getElementById("rows").addEventListener("submit", async (e) => {
    const form = e.target.closest("form.rate");
    if (!form) return;
    e.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;  // one click, one rating
    try {
      const body = {inspection_id: form.dataset.inspection, score: Number(form.elements.score.value), comment: form.elements.comment.value};
      const r = await fetch("/api/v1/ratings", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      if (!r.ok) { error.textContent = await errorText(r); button.disabled = false; return; }
      form.parentElement.innerHTML = ratingCell({rating: body.score});
      document.getElementById("rating-notice").textContent = T.rating_thanks;
    } catch (err) {
      error.textContent = T.offline_retry;
      button.disabled = false;
    }
  });
  // The file chooser is a labelled button: say which photo was picked (the browser's own text is hidden).
  const photo = document.getElementById("photo");
  photo.addEventListener("change", () => {
    document.getElementById("photo-name").textContent = photo.files[0] ? photo.files[0].name : (LANG === "zh" ? "未选择照片" : "No photo chosen");
  });
  // On a phone each row is a card: every cell carries its column's name.
  function labelCells() {
    const heads = [...document.querySelectorAll("#history thead th")].map(th => th.textContent.trim());
    document.querySelectorAll("#rows tr").forEach(tr => [...tr.children].forEach((td, n) => td.setAttribute("data-label", heads[n] || "")));
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
      document.getElementById("rating-head").hidden = !d.outcomes_shown;
      document.getElementById("outcomes-hidden").hidden = d.outcomes_shown;
      const cols = d.outcomes_shown ? 5 : 3;
      document.getElementById("rows").innerHTML = d.inspections.length ? d.inspections.map(i =>
        `<tr><td>${esc(i.date)}</td><td>${esc(i.agencies.join("、"))}</td><td>${esc(i.fields.join("、"))}</td>` +
        (d.outcomes_shown ? `<td class="result">${esc((i.outcomes || []).map(o => `${o.agency}：${o.result_label}`).join("；"))}${exportLink(i)}</td><td>${ratingCell(i)}</td>` : "") + `</tr>`).join("")
        : `<tr><td colspan="${cols}" class="muted">${T.none}</td></tr>`;
      labelCells();
    } finally {
      submit.disabled = false;
    }
  });
})();
