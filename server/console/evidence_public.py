"""The public page of the evidence log's heads (公开树头), without sign-in: the server's key and its fingerprint, the
latest signed head, and the head of each of the last 30 days (the last head signed that day, China Standard Time),
so that enterprises, other agencies and courts can keep them and hold the server to them later
(``fe-server tree-head --check FILE`` with a head fetched from ``/api/v1/evidence/tree-head?size=N``)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Literal

from litestar import get
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.response import Template

from protocol.bundle import fingerprint, grouped
from server import db as dbmod
from protocol.cst import CST
from server.evidence.bundle import day_start
from server.evidence.bundle_summary import when
from server.evidence.log import latest_tree_head, tree_head_before

#: How many days of daily heads the page lists.
DAYS = 30
DAY_MS = 86_400_000

TEXT = {
    "zh": {
        "title": "证据日志公开树头", "switch": "English", "key": "平台公钥", "fingerprint": "公钥指纹（SHA-256）", "latest": "最新签名树头",
        "daily": "每日树头（每天最后签署的树头，北京时间）", "day": "日期", "size": "记录数", "signed": "签署时间", "root": "根哈希", "json": "JSON",
        "none": "尚无签名树头", "why": "平台签署的每个树头都永久保存。请下载并自行保存树头：此后平台的任何日志都必须包含它所覆盖的记录且不得改动，"
        "可用 fe-server tree-head --check 文件 或一致性证明核验；证据包（证据包核验：python -m protocol.verify_bundle 文件）也附有当日公布的树头。",
    },
    "en": {
        "title": "Evidence log: published tree heads", "switch": "中文", "key": "Server public key", "fingerprint": "Key fingerprint (SHA-256)",
        "latest": "Latest signed tree head", "daily": "Daily heads (the last head signed each day, China Standard Time)", "day": "Day", "size": "Records",
        "signed": "Signed", "root": "Root hash", "json": "JSON", "none": "No signed tree head yet",
        "why": "Every head the server signs is kept for good. Download a head and keep it: every later log must hold the records it covers, "
        "unchanged (check with fe-server tree-head --check FILE or a consistency proof); evidence bundles (python -m protocol.verify_bundle FILE) "
        "carry the day's published head too.",
    },
}  # fmt: skip


@get("/public/tree-head", sync_to_thread=True, include_in_schema=False)
def public_tree_head(state: State, lang: Annotated[Literal["zh", "en"], QueryParameter(description="language")] = "zh") -> Template:
    """The published heads, for anyone (no sign-in); Chinese first, English with ?lang=en."""
    key = state.server_public_key
    now = int(time.time() * 1000)
    today = day_start(now)
    daily = []
    with dbmod.reading(state.settings.db) as tx:
        latest = latest_tree_head(tx, key)
        for n in range(DAYS):
            end = today + DAY_MS - n * DAY_MS  # the end of the day n days ago
            head = tree_head_before(tx, end, key)
            if head is None:
                break
            if head.timestamp_ms >= end - DAY_MS:  # signed that day (a day without a head shows none)
                daily.append({"day": dt.datetime.fromtimestamp((end - DAY_MS) / 1000, CST).strftime("%Y-%m-%d"), "head": head, "signed": when(head.timestamp_ms)})
    return Template(
        template_name="public_tree_head.html",
        context={"t": TEXT[lang], "lang": lang, "other": "en" if lang == "zh" else "zh", "key": key, "fp": grouped(fingerprint(key)), "latest": latest,
                 "latest_signed": when(latest.timestamp_ms) if latest else "", "daily": daily},
    )


#: This module's routes (in evidence_api.ROUTES).
ROUTES = [public_tree_head]
