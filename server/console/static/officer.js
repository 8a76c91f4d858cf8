// The officer's phone page: scan a door code from a photo and see the decision in words and colour; after a
// no-disturb, repeat or cap refusal, pick an exception basis from the officer's own registered items and scan again;
// show the enterprise a short-lived door code (亮码); my inspections today, a page at a time, ended with a result.
"use strict";
(() => {
  const T = readJson("texts");
  const ME = readJson("page-data");
  const LABELS = readJson("labels") || {};
  const W = LANG === "zh" ? {
    allowed: "可以检查", allowed_exception: "可以检查（依据例外）", allowed_pending: "可以检查（例外依据待监督机构复核）", join: "加入正在进行的检查",
    repeat: "重复检查：须说明例外依据", refused: "不得检查", needs_basis: "如有登记在案的例外依据，可选择后重新扫码：", kind: "例外依据类别",
    items: "我的登记依据", none: "没有可用于该企业和领域的登记依据", urgent_ref: "或填写尚未登记的紧急依据编号（事后由监督机构复核）",
    retry: "依据此例外重新扫码", pick_first: "请先选择一项依据。", badge: "亮码", badge_title: "亮码：请企业用手机扫描", badge_help: "企业用任意手机相机扫描下方二维码，即可核验您的身份、执法证和检查依据。",
    until: "有效至", left: "剩余", expired: "亮码已过期，请刷新。", renew: "刷新亮码", close: "关闭", checked: "企业已扫码核验", prev: "上一页", next: "下一页",
    page: (p, n, total) => `第 ${p}/${n} 页，共 ${total} 次`, none_today: "今天还没有检查", joint: "联合检查", state: {open: "进行中", ended: "已结束"},
    result: {no_violation: "未发现问题", rectification_ordered: "责令整改", case_opened: "立案", referred: "移送", not_completed: "未完成"}, unknown: "（未知）",
    photo_chosen: "已选择照片：", valid_to: "有效期至", open_case: "开立案件",
    kinds: {complaint: "投诉举报", random_draw: "双随机抽查", rectification_follow_up: "整改复查", superior_assignment: "上级交办", major_risk: "重大风险"},
  } : {
    allowed: "You may inspect", allowed_exception: "You may inspect (on the exception)", allowed_pending: "You may inspect (the exception awaits the supervisors' review)",
    join: "Join the inspection under way", repeat: "Repeat inspection: state an exception", refused: "Do not inspect",
    needs_basis: "If a registered exception applies, pick it and scan again:", kind: "Kind of exception", items: "My registered items",
    none: "No registered item fits this enterprise and field", urgent_ref: "Or type the number of an urgent basis not yet registered (the supervisors review it afterwards)",
    retry: "Scan again on this exception", pick_first: "Pick an item first.", badge: "Show my code", badge_title: "Your code: let the enterprise scan it",
    badge_help: "The enterprise scans this QR code with any phone camera to check who you are, your credential and the basis.", until: "Good until", left: "left",
    expired: "The code has expired: renew it.", renew: "New code", close: "Close", checked: "The enterprise checked your code", prev: "Previous", next: "Next",
    page: (p, n, total) => `page ${p} of ${n}, ${total} inspections`, none_today: "No inspections today", joint: "joint", state: {open: "under way", ended: "ended"},
    result: {no_violation: "no violation", rectification_ordered: "rectification ordered", case_opened: "case opened", referred: "referred", not_completed: "not completed"},
    unknown: "(unknown)", photo_chosen: "Photo chosen: ", valid_to: "valid until", open_case: "Open a case",
    kinds: {complaint: "complaint or report", random_draw: "random draw", rectification_follow_up: "rectification follow-up", superior_assignment: "superior assignment", major_risk: "major risk"},
  };
  const lab = (group, id, fallback) => (LABELS[group] && LABELS[group][id]) || (fallback && fallback[id]) || W.unknown;
  const FIELDS = Object.fromEntries([...document.querySelectorAll("#field option")].map(o => [o.value, o.textContent]));
  const NEEDS_BASIS = new Set(["no_disturb", "repeat", "cap_reached", "low_yield", "exception_invalid"]);
  const PER_PAGE = 5;
  const $ = (id) => document.getElementById(id);
  const json = {"Content-Type": "application/json"};
  let lastScan = null;  // the field and reason of the scan that was refused, for the scan again
  let page = 1;
  // Inspections ended with 立案 for which the officer's agency has no case yet (from the server when the page was
  // drawn, and those the officer ends with 立案 here): each links to the cases page's form, filled in from it.
  const TO_OPEN = new Set(ME.to_open || []);

  // ------------------------------------------------------------------ scanning
  const box = $("decision");
  const refuse = (text) => { box.innerHTML = `<div class="decision refused" id="scan-error" role="alert">${esc(text)}</div>`; };

  async function sendScan(field, reason, exception) {
    const form = new FormData();
    const input = $("photo");
    const photo = await shrinkPhoto(input.files[0]);
    if (!photo) { refuse(T.photo); return null; }
    if (!photoFits(input, photo)) { refuse(T.photo_too_large); return null; }
    form.append("photo", photo, photo.name || "photo.jpg");
    form.append("field", field);
    form.append("reason", reason);
    if (exception) { form.append("exception_kind", exception.kind); form.append("exception_ref", exception.reference); }
    let r;
    try {
      r = await fetch("/api/v1/scans/photo", {method: "POST", body: form});
    } catch (err) {
      refuse(T.offline_retry);
      return null;
    }
    if (!r.ok) { refuse(await uploadErrorText(r, T)); return null; }
    return r.json();
  }

  function headline(d) {
    if (d.outcome === "allowed") return d.pending_review ? W.allowed_pending : d.exception_used ? W.allowed_exception : W.allowed;
    return W[d.outcome] || lab("scan_outcome", d.outcome);
  }

  function showDecision(d, field, reason) {
    const canBadge = d.inspection_id && (d.outcome === "allowed" || d.outcome === "join");
    box.innerHTML = `<div class="decision ${esc(d.outcome)}" id="decision-box" data-outcome="${esc(d.outcome)}" data-code="${esc(d.code)}">` +
      `<p class="outcome-words" id="outcome-words">${esc(headline(d))}</p><b>${esc(d.enterprise_name || "")}</b>` +
      `<p>${esc(LANG === "zh" ? d.message_zh : d.message_en)}</p>` +
      d.warnings.map(w => `<p class="warn">${esc(LANG === "zh" ? w.message_zh : w.message_en)}</p>`).join("") +
      (canBadge ? `<div class="actions"><button type="button" id="decision-badge" data-id="${esc(d.inspection_id)}">${esc(W.badge)}</button></div>` : "") + `</div>`;
    if (canBadge) $("decision-badge").addEventListener("click", () => showBadge(d.inspection_id, true));
    if (NEEDS_BASIS.has(d.code) && d.credit_code) {
      lastScan = {field, reason, credit_code: d.credit_code};
      offerExceptions(d.credit_code, field);
    } else {
      lastScan = null;
      $("exception").hidden = true;
    }
  }

  let choices = [];
  async function offerExceptions(creditCode, field) {
    const q = new URLSearchParams({credit_code: creditCode, field, lang: LANG});
    const r = await fetch(`/api/v1/exception-bases/choices?${q}`);
    if (!r.ok) { $("exception").hidden = true; return; }  // the decision above stays as it is
    choices = await r.json();
    $("exception-title").textContent = W.needs_basis;
    $("exception-kind-label").textContent = W.kind;
    $("exception-items-legend").textContent = W.items;
    $("exception-ref-label").textContent = W.urgent_ref;
    $("exception-submit").textContent = W.retry;
    const kinds = $("exception-kind");
    kinds.innerHTML = choices.map(c => `<option value="${esc(c.kind)}">${esc(c.label)}${LANG === "zh" ? `（${c.items.length}）` : ` (${c.items.length})`}</option>`).join("");
    const first = choices.find(c => c.items.length) || choices[0];
    if (first) kinds.value = first.kind;
    renderItems();
    $("exception").hidden = false;
  }

  function renderItems() {
    const c = choices.find(x => x.kind === $("exception-kind").value);
    if (!c) return;
    $("exception-items").innerHTML = c.items.length ? c.items.map((i, n) =>
      `<li><label><input type="radio" name="exception-item" value="${esc(i.reference)}" ${n === 0 ? "checked" : ""}>` +
      `<span><b>${esc(i.reference)}</b><br><span class="muted">${esc(i.text)}${i.valid_to_ms ? ` · ${esc(W.valid_to)} ${esc(when(i.valid_to_ms))}` : ""}</span></span></label></li>`).join("")
      : `<li class="muted" id="exception-none">${esc(W.none)}</li>`;
    $("exception-ref-box").hidden = !c.urgent;
    $("exception-ref").value = "";
  }
  $("exception-kind").addEventListener("change", renderItems);

  $("exception").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!lastScan) return;
    const typed = $("exception-ref").value.trim();
    const picked = document.querySelector("input[name='exception-item']:checked");
    const reference = typed || (picked ? picked.value : "");
    $("exception-error").textContent = "";
    if (!reference) { $("exception-error").textContent = W.pick_first; return; }
    const button = $("exception-submit");
    button.disabled = true;  // one scan again per tap
    try {
      const {field, reason} = lastScan;
      const d = await sendScan(field, reason, {kind: $("exception-kind").value, reference});
      if (d) { showDecision(d, field, reason); mine(1); }
    } finally {
      button.disabled = false;
    }
  });

  $("photo").addEventListener("change", () => {
    const f = $("photo").files[0];
    $("photo-name").textContent = f ? W.photo_chosen + f.name : "";
  });

  const submit = $("scan-submit");
  $("scan").addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;  // one scan per tap, however often it is tapped
    try {
      const field = $("field").value, reason = $("reason").value;
      const d = await sendScan(field, reason, null);
      if (d) { showDecision(d, field, reason); mine(1); }
    } finally {
      submit.disabled = false;
    }
  });

  // ------------------------------------------------------------------ the door code (亮码)
  let badgeTimer = null, badgeInspection = null, badgeExpires = 0, pollAt = 0;
  $("badge-title").textContent = W.badge_title;
  $("badge-help").textContent = W.badge_help;
  $("badge-renew").textContent = W.renew;
  $("badge-close").textContent = W.close;

  let badgeBusy = false;
  // One request for a code at a time: a double tap must not show a code that the second tap's code replaced.
  async function showBadge(inspectionId, fresh) {
    if (badgeBusy) return;
    badgeBusy = true;
    try { await loadBadge(inspectionId, fresh); } finally { badgeBusy = false; }
  }

  async function loadBadge(inspectionId, fresh) {
    const url = `/api/v1/inspections/${encodeURIComponent(inspectionId)}/badge`;
    let r = fresh ? null : await fetch(url);
    if (!r || !r.ok) r = await fetch(url, {method: "POST"});
    const panel = $("badge");
    if (!r.ok) { panel.hidden = false; $("badge-expiry").textContent = await errorText(r); return; }
    const b = await r.json();
    badgeInspection = inspectionId;
    badgeExpires = b.expires_ms;
    panel.hidden = false;
    panel.dataset.code = b.code;
    const img = $("badge-qr");
    img.src = b.qr_data_uri;
    img.alt = b.url;
    $("badge-checked").textContent = b.checked_ms ? W.checked : "";
    clearInterval(badgeTimer);
    badgeTimer = setInterval(tick, 1000);
    tick();
    panel.scrollIntoView({block: "start"});
  }

  async function tick() {
    const left = Math.max(0, Math.round((badgeExpires - Date.now()) / 1000));
    $("badge-expiry").textContent = left > 0
      ? `${W.until} ${new Date(badgeExpires).toLocaleTimeString(LANG === "zh" ? "zh-CN" : "en-GB", {hour12: false, timeZone: "Asia/Shanghai"})}（${W.left} ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}）`
      : W.expired;
    if (left === 0) { clearInterval(badgeTimer); $("badge-qr").removeAttribute("src"); return; }
    if (Date.now() >= pollAt && badgeInspection) {  // has the enterprise opened it?
      pollAt = Date.now() + 4000;
      const r = await fetch(`/api/v1/inspections/${encodeURIComponent(badgeInspection)}/badge`);
      if (r.ok && (await r.json()).checked_ms) $("badge-checked").textContent = W.checked;
    }
  }

  $("badge-renew").addEventListener("click", async () => {
    const b = $("badge-renew");
    b.disabled = true;
    try { if (badgeInspection) await showBadge(badgeInspection, true); } finally { b.disabled = false; }
  });
  $("badge-close").addEventListener("click", () => { clearInterval(badgeTimer); $("badge").hidden = true; badgeInspection = null; });

  // ------------------------------------------------------------------ my inspections today
  $("mine-prev").textContent = W.prev;
  $("mine-next").textContent = W.next;
  $("mine-prev").addEventListener("click", () => mine(page - 1));
  $("mine-next").addEventListener("click", () => mine(page + 1));

  async function mine(p) {
    const r = await fetch(`/api/v1/inspections/mine?page=${Math.max(1, p)}&per_page=${PER_PAGE}`);
    if (!r.ok) return;
    const d = await r.json();
    page = d.page;
    const pages = Math.max(1, Math.ceil(d.total / d.per_page));
    $("mine").innerHTML = d.items.length ? d.items.map(i => {
      const myPart = i.parts.find(p => p.officer_id === ME.officer_id);
      const open = myPart && !myPart.ended_ms;
      const agencies = new Set(i.parts.map(p => p.agency_id));
      return `<div class="decision ${open ? "allowed" : ""}" data-inspection="${esc(i.inspection_id)}"><b>${esc(i.enterprise_name || W.unknown)}</b> · ${esc(FIELDS[i.field] || lab("field", i.field))}` +
        `<div class="muted">${when(i.opened_ms)} · ${esc(W.state[i.status] || lab("inspection_state", i.status))}${agencies.size > 1 ? ` · ${esc(W.joint)}` : ""}` +
        (i.exception_kind ? ` · ${esc(lab("exception_kind", i.exception_kind, W.kinds))} ${esc(i.exception_ref || "")}` : "") + `</div>` +
        (open ? `<div class="actions"><label class="visually-hidden" for="result-${esc(i.inspection_id)}">${esc(T.result)}</label>` +
                `<select class="result" id="result-${esc(i.inspection_id)}">${Object.entries(W.result).map(([k, v]) => `<option value="${k}">${esc(lab("result", k, W.result) || v)}</option>`).join("")}</select> ` +
                `<button class="end" data-id="${esc(i.inspection_id)}">${esc(T.end)}</button> <button type="button" class="badge secondary" data-id="${esc(i.inspection_id)}">${esc(W.badge)}</button></div>`
              : `<div class="muted">${esc(T.result)}: ${esc(myPart && myPart.result ? lab("result", myPart.result, W.result) : "–")}</div>` +
                (myPart && myPart.result === "case_opened" && TO_OPEN.has(i.inspection_id)
                  ? `<div class="actions"><a class="button secondary open-case" href="/cases?lang=${LANG}&inspection=${encodeURIComponent(i.inspection_id)}">${esc(W.open_case)}</a></div>` : "")) + `</div>`;
    }).join("") : `<div class="muted">${esc(W.none_today)}</div>`;
    $("mine-pager").hidden = d.total <= d.per_page;
    $("mine-page").textContent = W.page(page, pages, d.total);
    $("mine-prev").disabled = page <= 1;
    $("mine-next").disabled = page >= pages;
    document.querySelectorAll("#mine button.end").forEach(b => b.addEventListener("click", async () => {
      b.disabled = true;  // a double tap ends the part once
      const result = b.parentElement.querySelector(".result").value;
      const r = await fetch(`/api/v1/inspections/${encodeURIComponent(b.dataset.id)}/end`, {method: "POST", headers: json, body: JSON.stringify({result})});
      if (r.ok && result === "case_opened") TO_OPEN.add(b.dataset.id);
      if (badgeInspection === b.dataset.id) $("badge-close").click();
      mine(page);
    }));
    document.querySelectorAll("#mine button.badge").forEach(b => b.addEventListener("click", () => showBadge(b.dataset.id, false)));
  }
  mine(1);
})();
