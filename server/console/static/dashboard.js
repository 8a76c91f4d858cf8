// The supervisors' dashboard. Live (server-sent events): inspections under way, devices, and today's figures. For the
// period picked (today, 7 days, 30 days, this month, custom days): the figures, the chart that drills down from
// agencies to fields to enterprises, inspections per district and per day. Alerts: filtered by kind, agency and
// handling, each acknowledged or assigned in place and opening its own page. Every id is shown by its label (L()).
"use strict";
(() => {
  const T = readJson("texts");
  const $ = id => document.getElementById(id);
  const zh = LANG === "zh";
  const pct = x => x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%";
  const today = document.querySelector(".period").dataset.today;

  // --- the period ----------------------------------------------------------------------------------------------------
  let period = {key: "today", from: today, to: today};
  function shiftDay(day, n) {
    const d = new Date(day + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + n); return d.toISOString().slice(0, 10);
  }
  function pick(key) {
    if (key === "today") period = {key, from: today, to: today};
    else if (key === "7d") period = {key, from: shiftDay(today, -6), to: today};
    else if (key === "30d") period = {key, from: shiftDay(today, -29), to: today};
    else if (key === "month") period = monthPeriod($("month").value || today.slice(0, 7));
    document.querySelectorAll(".period-pick").forEach(b => b.setAttribute("aria-pressed", String(b.dataset.period === key)));
    $("custom-period").hidden = key !== "custom";
    $("month-period").hidden = key !== "month";
    if (key === "custom") { $("from").value ||= period.from; $("to").value ||= period.to; $("from").focus(); return; }
    refreshPeriod();
  }
  // A calendar month, up to today for the current one.
  function monthPeriod(month) {
    const [y, m] = month.split("-").map(Number), last = new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
    return {key: "month", from: `${month}-01`, to: last < today ? last : today};
  }
  $("month-period").addEventListener("submit", e => {
    e.preventDefault();
    if (!/^\d{4}-\d{2}$/.test($("month").value)) return;
    period = monthPeriod($("month").value);
    refreshPeriod();
  });
  document.querySelectorAll(".period-pick").forEach(b => b.addEventListener("click", () => pick(b.dataset.period)));
  $("custom-period").addEventListener("submit", e => {
    e.preventDefault();
    const from = $("from").value, to = $("to").value;
    if (!from || !to || from > to) { $("period-error").textContent = zh ? "请选择开始和结束日期（开始不晚于结束）。" : "Choose a start and an end day (the start not after the end)."; return; }
    period = {key: "custom", from, to};
    refreshPeriod();
  });
  const q = () => `from_day=${period.from}&to_day=${period.to}`;

  async function getJson(url) {
    const r = await fetch(url);
    if (!r.ok) { $("period-error").textContent = await errorText(r); return null; }
    return r.json();
  }
  function refreshPeriod() {
    $("period-error").textContent = "";
    $("period-shown").textContent = period.from === period.to ? period.from : `${period.from} – ${period.to}`;
    $("export").href = `/api/v1/stats.csv?${q()}&lang=${LANG}`;
    drill.agency = drill.field = null;
    figures(); chart(); byAgency(); districts();
  }

  // --- figures -------------------------------------------------------------------------------------------------------
  function showFigures(s) {
    $("k-inspections").textContent = s.inspections;
    $("k-joint").textContent = pct(s.joint_rate);
    $("k-repeat").textContent = pct(s.repeat_rate);
    $("k-blocked").textContent = s.blocked_attempts;
    $("k-coverage").textContent = pct(s.recording_coverage_rate);
    $("k-participation").textContent = pct(s.participation_rate);
  }
  async function figures() { const s = await getJson(`/api/v1/stats/summary?${q()}`); if (s) showFigures(s); }

  // --- live: under way, devices, new alerts --------------------------------------------------------------------------
  let lastCount = null, lastAlert = null;
  function cells(tr) {  // a phone shows each row as a card: each cell names its column
    const heads = [...tr.closest("table").querySelectorAll("thead th")].map(th => th.textContent.trim());
    [...tr.children].forEach((td, n) => td.setAttribute("data-label", heads[n] || ""));
  }
  function render(d) {
    if (period.key === "today") showFigures(d.today);
    if (lastCount !== null && lastCount !== d.today.inspections) { chart(); byAgency(); districts(); if (period.key !== "today") figures(); }
    lastCount = d.today.inspections;
    $("under-way").innerHTML = d.under_way.length ? d.under_way.map(i =>
      `<tr data-inspection="${esc(i.inspection_id)}"><td>${esc(i.enterprise)}<div class="muted">${esc(i.credit_code)} · ${esc(L("field", i.field))}</div></td>` +
      `<td>${esc(i.agencies.join("、"))}${i.joint ? ` <span class="pill">${esc(T.joint)}</span>` : ""}</td><td>${esc(i.officers.join("、"))}</td>` +
      `<td>${when(i.since_ms)}</td><td class="${i.recorded ? "ok" : "warn"}">${i.recorded ? T.yes : T.no}</td></tr>`).join("")
      : `<tr><td colspan="5" class="muted">${T.none}</td></tr>`;
    $("under-way").querySelectorAll("tr").forEach(cells);
    $("fleet").innerHTML = d.fleet.length ? d.fleet.map(f =>
      `<tr><td><span class="nowrap">${esc(f.device_id)}</span><div class="muted">${esc(L("device_kind", f.kind))} · ${esc(L("agency", f.agency_id))}</div></td>` +
      `<td class="${f.online ? "ok" : "bad"}">${f.online ? T.online : T.offline}</td><td class="num">${f.backlog ?? "–"}</td><td>${when(f.last_seen_ms)}</td>` +
      `<td class="num">${f.battery === null || f.battery === undefined ? "–" : f.battery + "%"}</td>` +
      `<td class="num">${f.clock_offset_ms === null || f.clock_offset_ms === undefined ? "–" : (f.clock_offset_ms / 1000).toFixed(1) + (zh ? " 秒" : " s")}</td></tr>`).join("")
      : `<tr><td colspan="6" class="muted">${T.none}</td></tr>`;
    $("fleet").querySelectorAll("tr").forEach(cells);
    const top = d.alerts.length ? d.alerts[0].id : 0;
    if (top !== lastAlert) { lastAlert = top; alerts(); }
  }

  // --- alerts --------------------------------------------------------------------------------------------------------
  const box = $("alerts"), supervisor = box.dataset.role === "supervisor";
  function alertHtml(a) {
    const handled = [
      a.acknowledged_ms ? `${esc(T.acknowledged_by)}：${esc(a.acknowledged_by)}（${when(a.acknowledged_ms)}）` : "",
      a.assigned_to ? `${esc(T.assigned_to)} ${esc(a.assigned_to)}（${esc(T.by)} ${esc(a.assigned_by)}，${when(a.assigned_ms)}）` : "",
    ].filter(Boolean).join("；");
    const toFinding = supervisor && a.agency_id
      ? `<a class="to-finding" href="/supervision?alert=${encodeURIComponent(a.id)}&lang=${LANG}">${esc(T.to_finding)}</a>` : "";
    const assign = `<details class="assign-box"><summary>${esc(T.assign)}</summary><form class="inline assign" data-id="${a.id}">` +
      `<label>${esc(T.assignee)}<input name="assignee" required maxlength="100" autocomplete="off" list="assignees"></label>` +
      `<button type="submit" class="secondary">${esc(T.assign)}</button></form></details>`;
    return `<div class="alert-item sev-${esc(a.severity)}" data-alert="${a.id}"><div>${esc(zh ? a.message_zh : a.message_en)}</div>` +
      `<div class="muted">${when(a.created_ms)} · ${esc(L("alert_kind", a.kind))} · ${esc(L("severity", a.severity))}${a.agency_id ? " · " + esc(L("agency", a.agency_id)) : ""}</div>` +
      (handled ? `<div class="muted handled">${handled}</div>` : "") +
      `<div class="actions"><a href="/alerts/${a.id}?lang=${LANG}" class="details">${esc(T.details)}</a>${toFinding}` +
      (a.acknowledged_ms ? "" : `<button type="button" class="ack secondary" data-id="${a.id}">${esc(T.acknowledge)}</button>`) + `</div>${assign}</div>`;
  }
  async function alerts() {
    const params = new URLSearchParams({limit: "30", handled: $("alert-handled").value});
    if ($("alert-kind").value) params.set("kind", $("alert-kind").value);
    if ($("alert-agency") && $("alert-agency").value) params.set("agency_id", $("alert-agency").value);
    const r = await fetch(`/api/v1/alerts?${params}`);
    if (!r.ok) { $("alert-notice").textContent = ""; box.textContent = await errorText(r); return; }
    const rows = await r.json();
    box.innerHTML = rows.length ? rows.map(alertHtml).join("") : `<div class="muted">${T.none}</div>`;
  }
  $("alert-filter").addEventListener("change", alerts);
  // Whom an alert may go to: the active supervisors and agency administrators this person manages (a suggestion list;
  // the server decides).
  (async () => {
    const r = await fetch("/api/v1/users");
    if (!r.ok) return;
    $("assignees").innerHTML = (await r.json()).filter(u => !u.disabled_ms && (u.role === "supervisor" || u.role === "agency_admin"))
      .map(u => `<option value="${esc(u.username)}">${esc(L("role", u.role))}${u.agency_id ? " · " + esc(L("agency", u.agency_id)) : ""}</option>`).join("");
  })();
  async function act(url, body, button) {
    button.disabled = true;  // one click, one request
    try {
      const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
      $("alert-notice").className = r.ok ? "ok" : "bad";
      $("alert-notice").textContent = r.ok ? T.alert_done : await errorText(r);
      if (r.ok) await alerts();
    } catch (e) {
      $("alert-notice").className = "bad"; $("alert-notice").textContent = T.offline_retry;
    } finally { button.disabled = false; }
  }
  box.addEventListener("click", e => {
    const b = e.target.closest("button.ack");
    if (b) act(`/api/v1/alerts/${b.dataset.id}/acknowledge`, null, b);
  });
  box.addEventListener("submit", e => {
    const f = e.target.closest("form.assign");
    if (!f) return;
    e.preventDefault();
    act(`/api/v1/alerts/${f.dataset.id}/assign`, {assignee: f.elements.assignee.value.trim()}, f.querySelector("button"));
  });

  // --- the chart that drills down: agencies, then one agency's fields, then one field's enterprises --------------------
  const drill = {agency: null, field: null};
  let rows = [];
  function bars(items) {
    const max = Math.max(1, ...items.map(x => x.n));
    return items.length ? items.map(x =>
      `<${x.key ? "button type=\"button\"" : "div"} class="bar-row"${x.key ? ` data-key="${esc(x.key)}"` : ""}><span>${esc(x.name)}</span>` +
      `<span class="bar-track"><span class="bar" data-pct="${Math.max(2, 100 * x.n / max)}"></span></span><b>${x.n}${x.key ? ' <span aria-hidden="true">›</span>' : ""}</b></${x.key ? "button" : "div"}>`).join("")
      : `<div class="muted">${T.none_in_period}</div>`;
  }
  async function byAgency() {
    const got = await getJson(`/api/v1/stats/by-agency-field?${q()}`);
    if (got) { rows = got; await drawDrill(); }
  }
  async function drawDrill() {
    let items;
    if (drill.agency === null) {
      const sum = {};
      rows.forEach(x => { sum[x.agency_id] = (sum[x.agency_id] || 0) + x.inspections; });
      items = Object.entries(sum).map(([k, n]) => ({key: k, name: L("agency", k), n})).sort((a, b) => b.n - a.n);
    } else if (drill.field === null) {
      items = rows.filter(x => x.agency_id === drill.agency).map(x => ({key: x.field, name: L("field", x.field), n: x.inspections})).sort((a, b) => b.n - a.n);
    } else {
      const found = await getJson(`/api/v1/stats/by-enterprise?${q()}&agency_id=${encodeURIComponent(drill.agency)}&field=${encodeURIComponent(drill.field)}`) || [];
      items = found.map(x => ({key: null, name: `${x.name}（${x.credit_code}）`, n: x.inspections}));
    }
    const crumbs = [`<button type="button" class="secondary" data-level="0">${esc(T.all_agencies)}</button>`];
    if (drill.agency !== null) crumbs.push(`<span aria-hidden="true">›</span><button type="button" class="secondary" data-level="1">${esc(L("agency", drill.agency))}</button>`);
    if (drill.field !== null) crumbs.push(`<span aria-hidden="true">›</span><span aria-current="page">${esc(L("field", drill.field))}</span>`);
    $("crumbs").innerHTML = crumbs.join("");
    $("by-agency").innerHTML = bars(items);
    // Widths through the CSS object model: no style attributes in markup.
    document.querySelectorAll("#by-agency .bar").forEach(b => { b.style.width = b.dataset.pct + "%"; });
  }
  $("by-agency").addEventListener("click", e => {
    const b = e.target.closest("button.bar-row");
    if (!b) return;
    if (drill.agency === null) drill.agency = b.dataset.key; else drill.field = b.dataset.key;
    drawDrill();
  });
  $("crumbs").addEventListener("click", e => {
    const b = e.target.closest("button[data-level]");
    if (!b) return;
    if (b.dataset.level === "0") drill.agency = null;
    drill.field = null;
    drawDrill();
  });

  // --- districts and days ----------------------------------------------------------------------------------------------
  async function districts() {
    const got = await getJson(`/api/v1/stats/by-division?${q()}&lang=${LANG}`);
    if (!got) return;
    $("district-rows").innerHTML = got.length ? got.map(x =>
      `<tr><td>${esc(x.name)}</td><td class="num">${x.inspections}</td><td class="num">${x.enterprises}</td></tr>`).join("")
      : `<tr><td colspan="3" class="muted">${T.none_in_period}</td></tr>`;
  }
  async function chart() {
    const got = await getJson(`/api/v1/trend?${q()}`);
    if (!got) return;
    // The chart is drawn for the eye; a screen reader reads the same figures from a table.
    document.querySelector("#trend-table tbody").innerHTML = got.map(x => `<tr><td>${x.day}</td><td>${x.scans}</td><td>${x.inspections}</td></tr>`).join("");
    const svg = $("chart"), w = svg.clientWidth || 600, h = 180;
    const max = Math.max(1, ...got.map(x => x.scans)), bw = Math.min(48, w / Math.max(1, got.length)), every = Math.max(1, Math.ceil(got.length / 8));
    svg.innerHTML = got.map((x, i) => {
      const hs = (x.scans / max) * (h - 30), hi = (x.inspections / max) * (h - 30);
      return `<rect x="${i * bw + 2}" y="${h - 20 - hs}" width="${bw * 0.45}" height="${hs}" fill="#7f9cb9"><title>${x.day}: ${T.scans} ${x.scans}</title></rect>` +
             `<rect x="${i * bw + 2 + bw * 0.45}" y="${h - 20 - hi}" width="${bw * 0.45}" height="${hi}" fill="#1f3b5a"><title>${x.day}: ${T.inspections} ${x.inspections}</title></rect>` +
             (i % every === 0 && i * bw + 36 < w ? `<text x="${i * bw + 2}" y="${h - 5}" font-size="11" fill="#4f5f70">${x.day.slice(5)}</text>` : "");
    }).join("");
  }

  const es = new EventSource("/api/v1/stream");
  es.addEventListener("snapshot", (e) => { render(JSON.parse(e.data)); $("live-state").className = "pill ok"; });
  es.onerror = () => { $("live-state").className = "pill bad"; };
  refreshPeriod(); alerts();
  setInterval(() => { chart(); byAgency(); districts(); if (period.key !== "today") figures(); }, 60000);
})();
