// The supervisors' dashboard: live figures, inspections under way, alerts and devices by server-sent
// events; the per-agency chart and the 30-day trend refreshed when the day's count changes and every minute.
"use strict";
(() => {
  const T = readJson("texts");
  function pct(x){return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%"}
  let lastCount = null;
  function render(d){
    const s = d.today;
    if (lastCount !== null && lastCount !== s.inspections) { chart(); byAgency(); }
    lastCount = s.inspections;
    document.getElementById("k-inspections").textContent = s.inspections;
    document.getElementById("k-joint").textContent = pct(s.joint_rate);
    document.getElementById("k-repeat").textContent = pct(s.repeat_rate);
    document.getElementById("k-blocked").textContent = s.blocked_attempts;
    document.getElementById("k-coverage").textContent = pct(s.recording_coverage_rate);
    document.getElementById("k-participation").textContent = pct(s.participation_rate);
    document.getElementById("under-way").innerHTML = d.under_way.length ? d.under_way.map(i =>
      `<tr data-inspection="${esc(i.inspection_id)}"><td>${esc(i.enterprise)}<div class="muted">${esc(i.credit_code)} · ${esc(i.field)}</div></td>` +
      `<td>${esc(i.agencies.join("、"))}${i.joint ? ` <span class="pill">${T.joint}</span>` : ""}</td><td>${esc(i.officers.join("、"))}</td>` +
      `<td>${when(i.since_ms)}</td><td class="${i.recorded ? "ok" : "warn"}">${i.recorded ? T.yes : T.no}</td></tr>`).join("")
      : `<tr><td colspan="5" class="muted">${T.none}</td></tr>`;
    const alerts = document.getElementById("alerts");
    // A supervisor opens a finding from an alert about an agency (the supervision page fills in what the alert says).
    const toFinding = a => alerts.dataset.role === "supervisor" && a.agency_id
      ? ` · <a class="to-finding" href="/supervision?alert=${encodeURIComponent(a.id)}&lang=${LANG}">${esc(T.to_finding)}</a>` : "";
    alerts.innerHTML = d.alerts.length ? d.alerts.map(a =>
      `<div class="alert-item sev-${esc(a.severity)}"><div>${esc(LANG === "zh" ? a.message_zh : a.message_en)}</div><div class="muted">${when(a.created_ms)} · ${esc(LANG === "zh" ? a.label_zh : a.label_en)}${toFinding(a)}</div></div>`).join("")
      : `<div class="muted">${T.none}</div>`;
    document.getElementById("fleet").innerHTML = d.fleet.map(f =>
      `<tr><td>${esc(f.device_id)}<div class="muted">${esc(f.kind)} · ${esc(f.agency_id)}</div></td><td class="${f.online ? "ok" : "bad"}">${f.online ? T.online : T.offline}</td>` +
      `<td>${f.backlog ?? "–"}</td><td>${when(f.last_seen_ms)}</td><td>${f.battery ?? "–"}</td><td>${f.clock_offset_ms ?? "–"}</td></tr>`).join("");
  }
  async function chart(){
    const r = await fetch("/api/v1/trend?days=30"); if (!r.ok) return;
    const rows = await r.json(), svg = document.getElementById("chart"), w = svg.clientWidth || 800, h = 180;
    const max = Math.max(1, ...rows.map(x => x.scans)), bw = w / Math.max(1, rows.length);
    svg.innerHTML = rows.map((x, i) => {
      const hs = (x.scans / max) * (h - 30), hi = (x.inspections / max) * (h - 30);
      return `<rect x="${i * bw + 2}" y="${h - 20 - hs}" width="${bw * 0.45}" height="${hs}" fill="#9db4cc"><title>${x.day}: ${x.scans}</title></rect>` +
             `<rect x="${i * bw + 2 + bw * 0.45}" y="${h - 20 - hi}" width="${bw * 0.45}" height="${hi}" fill="#1f3b5a"><title>${x.day}: ${x.inspections}</title></rect>` +
             (i % 5 === 0 ? `<text x="${i * bw + 2}" y="${h - 5}" font-size="10" fill="#5b6b7c">${x.day.slice(5)}</text>` : "");
    }).join("");
  }
  async function byAgency(){
    const r = await fetch("/api/v1/stats/by-agency-field?days=30"); if (!r.ok) return;
    const rows = await r.json(), max = Math.max(1, ...rows.map(x => x.inspections));
    document.getElementById("by-agency").innerHTML = rows.length ? rows.map(x =>
      `<div class="bar-row"><span>${esc(LANG === "zh" ? x.agency_name : x.agency_id)} · ${esc(LANG === "zh" ? x.field_name : x.field)}</span>` +
      `<span class="bar" data-pct="${Math.max(2, 100 * x.inspections / max)}"></span><b>${x.inspections}</b></div>`).join("")
      : `<div class="muted">${T.none}</div>`;
    // Widths through the CSS object model: no style attributes in markup.
    document.querySelectorAll("#by-agency .bar").forEach(b => { b.style.width = b.dataset.pct + "%"; });
  }
  const es = new EventSource("/api/v1/stream");
  es.addEventListener("snapshot", (e) => { render(JSON.parse(e.data)); document.getElementById("live-state").className = "pill ok"; });
  es.onerror = () => { document.getElementById("live-state").className = "pill bad"; };
  chart(); byAgency(); setInterval(() => { chart(); byAgency(); }, 60000);
})();
