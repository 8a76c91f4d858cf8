"""The human-readable summary of an evidence bundle (summary.txt): Chinese first, then English. It says what the bundle
holds and how to check it; the manifest's signature covers it, so a changed word is found like a changed record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from protocol.cst import CST
from protocol.bundle import grouped

if TYPE_CHECKING:
    from server.evidence.bundle import Selection
    from server.evidence.log import TreeHead

#: What each kind of record is called, in Chinese and English.
KINDS: dict[str, tuple[str, str]] = {
    "enterprise_scanned": ("扫码检查", "code scanned"),
    "inspection_started": ("检查开始", "inspection started"),
    "inspection_joined": ("加入联合检查", "joined the inspection"),
    "inspection_ended": ("检查结束", "inspection ended"),
    "media_captured": ("录音录像/照片", "recording captured"),
    "media_integrity": ("录音录像被改动", "recording changed"),
    "provisional_decision": ("终端离线判定", "offline decision"),
    "device_status": ("设备状态", "device status"),
    "device_alarm": ("设备告警", "device alarm"),
    "inspection.rated": ("企业评价", "rated by the enterprise"),
}
RESULTS: dict[str, tuple[str, str]] = {
    "no_violation": ("未发现问题", "no violation"),
    "rectification_ordered": ("责令整改", "rectification ordered"),
    "case_opened": ("立案", "case opened"),
    "referred": ("移送", "referred"),
    "not_completed": ("未完成", "not completed"),
}


MEDIA_KINDS: dict[str, str] = {"video": "录像", "audio": "录音", "photo": "照片"}


def when(ms: int | None) -> str:
    """China Standard Time, to the second."""
    return "—" if ms is None else dt.datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d %H:%M:%S")


def _kind(item: dict[str, Any], lang: int) -> str:
    k = item["event"]["type"] if "event" in item else item["record"]["kind"]
    if k not in KINDS and k.startswith("case."):
        return f"案件记录 {k}" if lang == 0 else f"case record {k}"
    return KINDS.get(k, (k, k))[lang]


def _line(item: dict[str, Any], lang: int) -> str:
    if "event" in item:
        e = item["event"]
        who = f"设备 {e['device_id']} 第 {e['seq']} 条" if lang == 0 else f"device {e['device_id']} seq {e['seq']}"
        return f"  [{item['log_index']}] {when(e['device_time_ms'])}  {_kind(item, lang)}  {who}  {e['event_id']}"
    r = item["record"]
    who = "平台记录" if lang == 0 else "server record"
    return f"  [{item['log_index']}] {when(r['at_ms'])}  {_kind(item, lang)}  {who} {r['subject']}  {r['record_id']}"


def summary_text(
    s: Selection, items: Sequence[dict[str, Any]], media: Sequence[dict[str, Any]], head: TreeHead, pub: TreeHead | None, fp: str,
    counts: dict[str, int], now_ms: int, unlogged: Sequence[str],
) -> str:
    """The summary, Chinese then English."""
    zh = [
        "执法证据包", "=" * 10, s.title.get("zh", ""), f"导出时间：{when(now_ms)}（北京时间）", "",
        f"本证据包共 {counts['records']} 条记录（设备事件 {counts['events']} 条，平台记录 {counts['server_records']} 条），录音录像/照片 {counts['media']} 个。",
        "每条记录都附有包含证明，证明它在下面这个签名树头所覆盖的证据日志中；记录或证明的任何一个字节被改动，都会被发现。",
    ]
    en = [
        "Evidence bundle", "=" * 15, s.title.get("en", ""), f"Exported {when(now_ms)} (China Standard Time)", "",
        f"{counts['records']} records ({counts['events']} device events, {counts['server_records']} server records), {counts['media']} recordings or photos.",
        "Each record comes with its inclusion proof in the evidence log of the signed tree head below: a changed byte of a record or a proof shows.",
    ]
    def name(group: str, key: str, lang: int) -> str:
        found = s.names.get(group, {}).get(key)
        return f"{found[lang]}（{key}）" if found and lang == 0 else f"{found[lang]} ({key})" if found else key

    for i in s.inspections:
        zh += ["", f"检查 {i['inspection_id']}：企业 {i['enterprise']}（{i['credit_code']}），牵头机关 {name('agency', i['lead_agency_id'], 0)}，"
                   f"领域 {name('field', i['field'], 0)}，{when(i['opened_ms'])} 开始，{when(i['ended_ms'])} 结束"]
        en += ["", f"Inspection {i['inspection_id']} of {i['credit_code']} led by {name('agency', i['lead_agency_id'], 1)}, field {name('field', i['field'], 1)}, "
                   f"opened {when(i['opened_ms'])}, ended {when(i['ended_ms'])}"]
        for p in i["parts"]:
            res = RESULTS.get(p["result"] or "", (p["result"] or "—", p["result"] or "—"))
            zh.append(f"  执法人员 {name('officer', p['officer_id'], 0)}，{name('agency', p['agency_id'], 0)}，设备 {p['device_id'] or '—'}，结果：{res[0]}")
            en.append(f"  officer {name('officer', p['officer_id'], 1)}, {name('agency', p['agency_id'], 1)}, device {p['device_id'] or '—'}, result: {res[1]}")
    zh += ["", "记录（[日志序号] 时间 类别 来源 编号）："] + [_line(x, 0) for x in items]
    en += ["", "Records ([log index] time kind source id):"] + [_line(x, 1) for x in items]
    if media:
        zh += ["", "录音录像/照片（文件留在设备上，哈希值由设备签名上报）："]
        en += ["", "Recordings (the files stay on the device; their hashes were signed by it):"]
        for m in media:
            zh.append(f"  {m['file_name']}  {MEDIA_KINDS.get(m['media_kind'], m['media_kind'])}  {m['size_bytes']} 字节  SHA-256 {m['sha256']}  {when(m['started_ms'])} 至 {when(m['ended_ms'])}  完整性 {m['integrity']}")
            en.append(f"  {m['file_name']}  {m['media_kind']}  {m['size_bytes']} bytes  SHA-256 {m['sha256']}  {when(m['started_ms'])} to {when(m['ended_ms'])}  integrity {m['integrity']}")
    if unlogged:
        zh += ["", f"另有 {len(unlogged)} 条记录不在该树头覆盖的日志中，未收入：{', '.join(unlogged)}"]
        en += ["", f"{len(unlogged)} records are not in the log of this head and are left out: {', '.join(unlogged)}"]
    zh += [
        "", f"签名树头：{head.tree_size} 条记录，根哈希 {head.root_hash}，签名于 {when(head.timestamp_ms)}",
        f"每日公布的树头：{f'{pub.tree_size} 条记录，签名于 {when(pub.timestamp_ms)}（附一致性证明）' if pub else '无（今天之前平台尚未签署树头）'}",
        f"平台公钥：{head.public_key}", f"公钥指纹（SHA-256）：{grouped(fp)}",
        "请向平台运营方或 /public/tree-head 页面核对公钥指纹。", "",
        "核验方法（无需联网、无需平台）：python -m protocol.verify_bundle 本文件.zip --key <平台公钥>", "",
    ]
    en += [
        "", f"Signed tree head: {head.tree_size} records, root {head.root_hash}, signed {when(head.timestamp_ms)}",
        f"Published daily head: {f'{pub.tree_size} records, signed {when(pub.timestamp_ms)} (with a consistency proof)' if pub else 'none (no head was signed before today)'}",
        f"Server public key: {head.public_key}", f"Key fingerprint (SHA-256): {grouped(fp)}",
        "Compare the fingerprint with the operator's or the page /public/tree-head.", "",
        "To check it (offline, without the server): python -m protocol.verify_bundle THIS.zip --key <server public key>", "",
    ]
    return "\n".join(zh + ["-" * 40] + en)
