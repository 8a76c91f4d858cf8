"""The first dashboard page: live totals and the latest events, Chinese first with an English switch."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import MediaType, get
from litestar.params import QueryParameter

_TEXT = {
    "zh": {
        "title": "执法监督平台 · 实时接入",
        "devices": "在册设备",
        "events": "已存事件",
        "minute": "近一分钟",
        "rejected": "拒收消息",
        "gaps": "序号缺口设备",
        "broker": "消息总线",
        "online": "已连接",
        "offline": "未连接",
        "recent": "最新事件",
        "cols": ["存储时间", "设备", "序号", "类型", "事件编号"],
        "switch": "English",
        "lang_other": "en",
    },
    "en": {
        "title": "Enforcement supervision · live ingest",
        "devices": "Devices",
        "events": "Events stored",
        "minute": "Last minute",
        "rejected": "Rejected messages",
        "gaps": "Devices with gaps",
        "broker": "Broker",
        "online": "connected",
        "offline": "not connected",
        "recent": "Latest events",
        "cols": ["Stored at", "Device", "Seq", "Type", "Event id"],
        "switch": "中文",
        "lang_other": "zh",
    },
}

_TYPE_NAMES = {
    "zh": {
        "enterprise_scanned": "扫码",
        "inspection_started": "检查开始",
        "inspection_joined": "加入检查",
        "inspection_ended": "检查结束",
        "media_captured": "音视频",
        "device_status": "心跳",
        "device_alarm": "设备告警",
    },
    "en": {},
}

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,"PingFang SC","Noto Sans CJK SC",sans-serif;margin:0;background:#f4f6f8;color:#1d2733}}
header{{background:#1f3b5a;color:#fff;padding:12px 16px;display:flex;justify-content:space-between;align-items:center}}
header a{{color:#cfe3ff}} main{{padding:16px;max-width:1100px;margin:auto}}
.cards{{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}}
.card{{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 2px #0002}}
.card b{{display:block;font-size:28px}} table{{width:100%;border-collapse:collapse;background:#fff;margin-top:12px}}
td,th{{padding:6px 8px;border-bottom:1px solid #e3e8ee;text-align:left;font-size:14px}} .warn{{color:#b42318}}
</style></head><body>
<header><strong>{title}</strong><a href="?lang={lang_other}">{switch}</a></header>
<main>
<div class="cards">
<div class="card">{devices}<b id="devices">–</b></div>
<div class="card">{events}<b id="events">–</b></div>
<div class="card">{minute}<b id="minute">–</b></div>
<div class="card">{rejected}<b id="rejected">–</b></div>
<div class="card">{gaps}<b id="gaps">–</b></div>
<div class="card">{broker}<b id="broker">–</b></div>
</div>
<h3>{recent}</h3>
<table><thead><tr>{cols}</tr></thead><tbody id="recent"></tbody></table>
</main>
<script>
const T = {{online: "{online}", offline: "{offline}"}}, NAMES = {names};
function esc(s){{return String(s).replace(/[&<>"]/g, c => ({{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}}[c]))}}
async function refresh(){{
  try {{
    const o = await (await fetch("/api/v1/overview")).json();
    for (const [id, v] of [["devices",o.devices],["events",o.events],["minute",o.events_last_minute],["rejected",o.rejected],["gaps",o.devices_with_gaps]])
      document.getElementById(id).textContent = v;
    const b = document.getElementById("broker"); b.textContent = o.mqtt_connected ? T.online : T.offline;
    b.className = o.mqtt_connected ? "" : "warn";
    document.getElementById("recent").innerHTML = o.recent.map(e =>
      `<tr><td>${{new Date(e.stored_ms).toLocaleTimeString()}}</td><td>${{esc(e.device_id)}}</td><td>${{e.seq}}</td>` +
      `<td>${{esc(NAMES[e.type] || e.type)}}</td><td><code>${{esc(e.event_id.slice(0,8))}}</code></td></tr>`).join("");
  }} catch (err) {{ document.getElementById("broker").textContent = "?"; }}
}}
refresh(); setInterval(refresh, 2000);
</script></body></html>"""


@get("/", media_type=MediaType.HTML, sync_to_thread=False, include_in_schema=False)
def dashboard(lang: Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")] = "zh") -> str:
    """The live dashboard (zh-CN first; ?lang=en for English)."""
    import json

    t = _TEXT[lang]
    cols = "".join(f"<th>{c}</th>" for c in t["cols"])
    fields = {k: v for k, v in t.items() if k != "cols"}
    return _PAGE.format(lang="zh-CN" if lang == "zh" else "en", cols=cols, names=json.dumps(_TYPE_NAMES[lang], ensure_ascii=False), **fields)
