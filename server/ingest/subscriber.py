"""The MQTT ingest: a persistent QoS 1 subscription, a writer thread that stores batches, signed receipts.

paho's callbacks only put messages on a bounded queue (when it is full paho blocks, and the broker
holds the rest). A verifier thread takes them off in batches and has their signatures checked in a child
process (server/ingest/verify_worker.py), overlapping the writer's work on the batch before; one writer thread does all
database work, never the event loop, each batch in one transaction (server/ingest/batch.py) of the
database named by ``settings.db`` (a SQLite file or a ``postgresql://`` URL). A receipt is published only
after its batch committed.

While the database cannot write (a full disk, an I/O error) the writer keeps the batch and retries it
with backoff, never dropping or receipting it, and the ingest stops taking messages off the broker: it
holds back its PUBACKs (paho's manual acks), so the broker stops sending once the server's in-flight
window is full and keeps the rest in the session; devices keep theirs in their outboxes. ``/health``
says "degraded" meanwhile; the first write that succeeds raises a storage alert and the ingest resumes.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import topics
from protocol.codec import seal
from protocol.decision import Policy
from protocol.messages import Receipt, Rejection, ServerMessage
from protocol.signing import SigningKey
from server import db as dbmod
from server.ingest.metrics import IngestMetrics
from server.settings import ServerSettings
from protocol.timesync import MESSAGE_EXPIRY_S
from server.rules.alerts import raise_alert
from server.ingest.clocks import TimeServer
from server.evidence.log import sign_tree_head_if_due
from server.ingest.batch import check_batch, store_or_isolate
from server.ingest.projector import Projector
from server.rules.snapshots import build_snapshot, device_region
from server.storage import devices
from server.storage.engine import Tx, storage_for
from server.storage.failures import CANNOT_WRITE, disk_full
from server.storage.leader import ingest_lock
from server.ingest.store import BatchOutcome, Checked, DeviceKeys, Incoming
from server.ingest.verify_worker import VerifierProcess

log = logging.getLogger(__name__)

#: The broker keeps the server's subscription and queued messages this long while the server is down.
SESSION_EXPIRY_S = 7 * 24 * 3600
#: The same for one of several ingest processes in a shared subscription: Mosquitto queues a member's share while it
#: is away, so a worker gone for good must leave the group soon; what was queued for it goes with its session and
#: the devices resend it (their outboxes keep every unreceipted event; docs/storage-seam.md §5.2).
SHARED_SESSION_EXPIRY_S = 120
#: How often a process waiting for its broker client id asks whether the process holding it has gone.
CLIENT_ID_RETRY_S = 5.0
#: Messages held in memory between paho and the writer; past it paho waits (backpressure to the broker).
QUEUE_MAX = 20_000
#: Receipt items per receipt message, keeping each well under the 64 KiB payload limit.
RECEIPT_CHUNK = 200
#: How long the verifier waits for more messages to join a batch once it has one.
BATCH_LINGER_S = 0.005
#: While the log grows, a signed tree head is made at least this often (narrows what could be rewritten unseen), once
#: per interval for all ingest processes together.
TREE_HEAD_INTERVAL_S = 60.0
#: First and longest wait between attempts to store a batch while the database cannot write.
STORAGE_RETRY_MIN_S = 0.5
STORAGE_RETRY_MAX_S = 10.0
#: Device kinds that scan enterprise codes, and so need decision snapshots.
SCANNING_KINDS = frozenset({"qr_terminal", "phone"})
#: A device that is active gets a fresh decision snapshot at least this often.
SNAPSHOT_REFRESH_S = 300.0


class Ingest:
    """Subscribes to every device's events and stores them exactly once."""

    def __init__(self, settings: ServerSettings, server_key: SigningKey, metrics: IngestMetrics, policy: Policy) -> None:
        self.settings = settings
        self.policy = policy
        self.key = server_key
        self.metrics = metrics
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=QUEUE_MAX)
        # Batches off the queue with their signatures checked (None: the check failed; the writer runs it again and
        # handles the failure as it handles a failing batch), in queue order. At most one is taken ahead of the writer:
        # the verifier takes the next batch off the queue only once the writer has taken the last one (``_ahead``), so
        # a batch holds what arrived during one writer's turn, as large as the load makes it, not a few messages taken
        # early that would each cost a commit and a round of receipts.
        self._checked: queue.Queue[tuple[list[Incoming], Checked | None]] = queue.Queue()
        self._ahead = threading.Semaphore(1)
        self._signatures = VerifierProcess()  # the verifier thread's checks, in a process of their own
        self._keys = DeviceKeys()
        self._presence: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._snapshot_sent: dict[str, float] = {}
        self._last_tree_head = time.monotonic()
        self._stop = threading.Event()
        self._verifier = threading.Thread(target=self._verify_loop, name="ingest-verifier", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self.connected = False
        #: Why the broker refused the ingest's login (its account or password), until a login succeeds; else None.
        self.refused: str | None = None
        self.writer_error: str | None = None
        #: Why the database cannot write now (the ingest is paused), or None.
        self.storage_problem: str | None = None
        self._storage_since_ms = 0
        self._storage_full = False
        # PUBACKs held back while the storage fails (in arrival order, as MQTT requires); None: ack at once.
        self._ack_lock = threading.Lock()
        self._held_acks: list[tuple[int, int]] | None = None
        self.time_server = TimeServer(settings.db, server_key)
        # One process per broker client id: a second one connecting would take this one's broker session over, this one
        # would take it back on reconnecting, and so on (server/storage/leader.py ingest_lock).
        self._client_lock = ingest_lock(settings.db, settings.mqtt_client_id)
        self._taken = (
            f"another ingest process uses the broker client id {settings.mqtt_client_id!r} (it holds the client id's lock in the"
            " database); this one waits for it to stop before connecting (start further ingest processes with --ingest-worker K)"
        )
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id, protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,  # see _ack: how the ingest stops taking messages while it cannot store them
        )
        c = self._client
        c.enable_logger(logging.getLogger("paho.server"))
        if settings.mqtt_username:  # the broker's account for the server (server/broker/access.py)
            c.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
        if settings.mqtt_ca_file is not None:  # TLS: the broker's certificate must chain to the project CA
            cert, key = settings.mqtt_cert_file, settings.mqtt_key_file
            c.tls_set(ca_certs=str(settings.mqtt_ca_file), certfile=str(cert) if cert else None, keyfile=str(key) if key else None)
        c.max_inflight_messages_set(20)  # a larger paho window is slower (it scans its in-flight list on every ack)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message

    # ------------------------------------------------------------------ paho thread

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason_code: object, properties: object) -> None:
        if getattr(reason_code, "is_failure", False):
            account = self.settings.mqtt_username or self.settings.mqtt_client_id
            self.refused = f"the broker refused the login of account {account!r}: {reason_code}"
            log.error(
                "broker refused the server's connection as %r: %s (is the account in the broker's password file? "
                "`fe-server broker-config --ingest-workers N` makes fe-ingest-1..N; check --mqtt-password-file)", account, reason_code,
            )
            return
        if not self._client_lock.held() and not self._claim():  # the lock went with its session, and another took it
            client.disconnect()  # ends paho's loop: no reconnecting, which would take the other's broker session
            self._wait_for_client_id_in_background()
            return
        self.refused = None
        self.connected = True
        self.metrics.connected.set(1)
        # Subscribe every time: a broker that lost its persistence also lost our subscription.
        client.subscribe(self.subscriptions())
        log.info("connected to the broker (session present: %s)", flags.session_present)

    def subscriptions(self) -> list[tuple[str, int]]:
        """The uplink, presence and time topics of every device, at QoS 1; in the shared group when there is one,
        so that several ingest processes split the devices' messages between them."""
        group = self.settings.mqtt_share_group
        plain = [topics.all_devices_up(), topics.all_devices_presence(), topics.all_devices_time()]
        return [(f"$share/{group}/{t}" if group else t, 1) for t in plain]

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object) -> None:
        self.connected = False
        self.metrics.connected.set(0)
        with self._ack_lock:
            if self._held_acks is not None:
                self._held_acks.clear()  # packet ids belong to the connection; the broker sends these again
        log.warning("disconnected from the broker: %s", reason_code)

    def _ack(self, msg: mqtt.MQTTMessage) -> None:
        """PUBACK a message now, or later if the storage fails (the broker then stops sending at its in-flight limit)."""
        with self._ack_lock:
            if self._held_acks is None:
                self._client.ack(msg.mid, msg.qos)
            else:
                self._held_acks.append((msg.mid, msg.qos))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._take(client, msg)
        finally:
            self._ack(msg)

    def _take(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/time"):  # answered at once here, never queued behind stored events; nothing is stored
            if (answer := self.time_server.answer(msg.topic, bytes(msg.payload), int(time.time() * 1000))) is not None:
                props = Properties(PacketTypes.PUBLISH)
                props.MessageExpiryInterval = MESSAGE_EXPIRY_S  # an answer that waited is useless: let the broker drop it
                client.publish(answer[0], answer[1], qos=1, properties=props)
            return
        if msg.topic.endswith("/presence"):
            self._presence.put((msg.topic, bytes(msg.payload)))
            return
        self._queue.put(Incoming(msg.topic, bytes(msg.payload), int(time.time() * 1000)))
        self.metrics.queue_depth.set(self._queue.qsize())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the verifier and the writer, and connect (once this process holds its client id: ``_claim``)."""
        self.start_workers()
        if self._claim():
            self._connect()
        else:
            self._wait_for_client_id_in_background()

    def _connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SHARED_SESSION_EXPIRY_S if self.settings.mqtt_share_group else SESSION_EXPIRY_S
        s = self.settings
        self._client.loop_stop()  # a loop that stood down (``_on_connect``) has ended or is ending: wait for it
        self._client.connect_async(s.mqtt_host, s.mqtt_port, keepalive=30, clean_start=False, properties=props)
        self._client.loop_start()

    def _claim(self) -> bool:
        """Whether this process may use its client id: it holds the id's lock (server/storage/leader.py ``ingest_lock``),
        or the database cannot be asked now (then it goes on, rather than stop ingesting; the holder is asked again at
        the next connection). Another process holding it: no connection, /health degraded, saying why."""
        if self._client_lock.acquire() or self._client_lock.unreachable:
            if self.refused == self._taken:
                self.refused = None
            return True
        if self.refused != self._taken:
            log.error("%s", self._taken)
        self.refused = self._taken
        return False

    def _wait_for_client_id_in_background(self) -> None:
        threading.Thread(target=self._wait_for_client_id, name="ingest-client-id", daemon=True).start()

    def _wait_for_client_id(self) -> None:
        """Ask for the client id again until the process holding it is gone, then connect."""
        while not self._stop.wait(CLIENT_ID_RETRY_S):
            if self._claim():
                log.warning("the broker client id %r is free again: connecting", self.settings.mqtt_client_id)
                self._connect()
                return

    def stop(self) -> None:
        """Disconnect, then store what was already received."""
        self._client.disconnect()
        self._client.loop_stop()
        self.stop_workers(30)
        self._client_lock.release()

    def start_workers(self) -> None:
        """Start the verifier and writer threads (``start`` does, before connecting)."""
        self._verifier.start()
        self._writer.start()

    def stop_workers(self, timeout: float) -> bool:
        """Let the verifier and the writer store what was received, then stop; False if one is still running."""
        self._stop.set()
        for thread in (self._verifier, self._writer):
            if thread.ident is not None:  # started
                thread.join(timeout)
        self._signatures.close()
        return not (self._verifier.is_alive() or self._writer.is_alive())

    @property
    def healthy(self) -> bool:
        """The verifier and the writer are alive."""
        return self._verifier.is_alive() and self._writer.is_alive() and self.writer_error is None

    @property
    def degraded(self) -> str | None:
        """Why the ingest cannot do its work (the database cannot write, the broker refuses its login), or None."""
        return self.storage_problem or self.refused

    @property
    def queue_depth(self) -> int:
        """Messages waiting for the writer."""
        return self._queue.qsize() + sum(len(batch) for batch, _ in list(self._checked.queue))

    # ------------------------------------------------------------------ verifier thread

    def _verify_loop(self) -> None:
        """Take a batch off the queue once the writer has taken the last one, and check its signatures while the writer
        stores that one. A batch whose check fails goes on unchecked: the writer checks it again and keeps aside what
        cannot be processed."""
        try:
            while not (self._stop.is_set() and self._queue.empty()):
                if not self._ahead.acquire(timeout=0.2):  # the writer has not taken the last batch yet
                    if not self._writer.is_alive():
                        return
                    continue
                batch = self._take_batch()
                if batch is None:
                    self._ahead.release()
                    continue
                checked: Checked | None = None
                try:
                    checked = check_batch(self.settings.db, batch, self._keys, self._signatures.verify_many)
                except Exception:  # noqa: BLE001 - the writer runs the check again and handles the failure
                    log.debug("checking a batch failed; the writer checks it again", exc_info=True)
                self._checked.put((batch, checked))
        except Exception as e:
            self.writer_error = f"{type(e).__name__}: {e}"
            log.exception("ingest verifier stopped")

    def _next_checked(self) -> tuple[list[Incoming], Checked | None] | None:
        try:
            item = self._checked.get(timeout=0.2)
        except queue.Empty:
            return None
        self._ahead.release()  # the verifier may take the next batch now, while this one is stored
        return item

    # ------------------------------------------------------------------ writer thread

    def _drained(self) -> bool:
        """Stopping, and the verifier has handed over everything it took."""
        return self._stop.is_set() and not self._verifier.is_alive() and self._checked.empty()

    def _write_loop(self) -> None:
        db = self.settings.db
        keys = self._keys
        projector = Projector(self.policy)
        pending: tuple[list[Incoming], Checked | None] | None = None  # taken off the queue, not yet committed: never dropped
        retry_s = STORAGE_RETRY_MIN_S
        try:
            while not (self._drained() and pending is None):
                if self._stop.is_set() and self.storage_problem is not None:
                    waiting = self.queue_depth + len(pending[0] if pending else ())
                    log.warning("stopping while the database cannot write: %d messages not stored (not receipted: the devices resend them)", waiting)
                    break
                try:
                    if self.storage_problem is not None and pending is None:
                        self._storage_recovered()  # a probe: nothing else would write while nothing arrives
                    self._handle_presence()
                    if pending is None:
                        pending = self._next_checked()
                        if pending is None:
                            continue
                    outcome = store_or_isolate(
                        db, pending[0], keys, projector=projector, pause_before_commit_s=self.settings.fault_pause_before_commit_s, checked=pending[1]
                    )
                    (batch, _), pending = pending, None
                    self._account(batch, outcome)
                    self._answer(outcome)
                    if self.storage_problem is not None:
                        self._storage_recovered()
                    self._refresh_snapshots(outcome.receipts.keys())
                    if outcome.stored and time.monotonic() - self._last_tree_head >= TREE_HEAD_INTERVAL_S:
                        self._sign_tree_head()
                    retry_s = STORAGE_RETRY_MIN_S
                except CANNOT_WRITE as e:  # the database cannot write: pause, keep the batch, try again
                    self._storage_failed(e)
                    self._stop.wait(retry_s)
                    retry_s = min(retry_s * 2, STORAGE_RETRY_MAX_S)
        except Exception as e:  # anything else stops ingest loudly; /health turns red
            self.writer_error = f"{type(e).__name__}: {e}"
            log.exception("ingest writer stopped")

    def _take_batch(self) -> list[Incoming] | None:
        """The next batch off the queue (waits a little for the first message), or None."""
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return None
        batch = [first]
        deadline = time.monotonic() + BATCH_LINGER_S
        while len(batch) < self.settings.batch_max:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        self.metrics.received.inc(len(batch))
        self.metrics.queue_depth.set(self._queue.qsize())
        return batch

    def _storage_failed(self, e: BaseException) -> None:
        """Pause the ingest: hold back PUBACKs, so the broker and the devices keep what is not stored."""
        self.metrics.storage_failures.inc()
        if self.storage_problem is not None:
            return
        self.storage_problem = f"the database cannot write: {e}"
        self._storage_since_ms = int(time.time() * 1000)
        self._storage_full = disk_full(e)
        self.metrics.storage_ok.set(0)
        with self._ack_lock:
            if self._held_acks is None:
                self._held_acks = []
        log.error("%s; not taking messages off the broker until it can (retrying every %g s at most)", self.storage_problem, STORAGE_RETRY_MAX_S)

    def _storage_recovered(self) -> None:
        """The alert about the pause, written first once the database writes again; then take messages again."""
        now_ms = int(time.time() * 1000)
        since = dt.datetime.fromtimestamp(self._storage_since_ms / 1000, dt.UTC).isoformat(timespec="seconds")
        minutes = round((now_ms - self._storage_since_ms) / 60000, 1)
        what_zh, what_en = ("磁盘已满", "the disk was full") if self._storage_full else ("无法写入", "it could not write")
        storage_for(self.settings.db).write(
            lambda tx: raise_alert(
                tx, "storage_full" if self._storage_full else "storage_failed", now_ms,
                f"服务器数据库{what_zh}（自 {since} 起约 {minutes} 分钟），期间暂停接收设备消息（由代理和设备保留），现已恢复：{self.storage_problem}",
                f"The server's database stopped writing ({what_en}) from {since} for about {minutes} min; device messages were left with the broker"
                f" and the devices meanwhile, and ingest has resumed: {self.storage_problem}",
            )
        )  # fmt: skip
        log.warning("the database writes again after %.1f min; taking messages off the broker again", minutes)
        self.storage_problem = None
        self.metrics.storage_ok.set(1)
        with self._ack_lock:
            held, self._held_acks = self._held_acks or [], None
            for mid, qos in held:  # in arrival order; their messages are in the queue, stored next
                self._client.ack(mid, qos)

    def _sign_tree_head(self) -> None:
        interval_ms = int(TREE_HEAD_INTERVAL_S * 1000)
        storage_for(self.settings.db).write(lambda tx: sign_tree_head_if_due(tx, self.key, interval_ms))
        self._last_tree_head = time.monotonic()

    def _handle_presence(self) -> None:
        while True:
            try:
                topic, payload = self._presence.get_nowait()
            except queue.Empty:
                return
            try:
                device_id = topics.device_id_from_presence(topic)
            except topics.TopicError:
                continue
            online = payload == b"online"
            if storage_for(self.settings.db).write(lambda tx: _record_presence(tx, device_id, online, int(time.time() * 1000))) and online:
                self.push_snapshot(device_id)

    def _refresh_snapshots(self, device_ids: Iterable[str]) -> None:
        now = time.monotonic()
        for device_id in device_ids:
            if now - self._snapshot_sent.get(device_id, -SNAPSHOT_REFRESH_S) >= SNAPSHOT_REFRESH_S:
                self.push_snapshot(device_id)

    def push_snapshot(self, device_id: str) -> None:
        """Send a device the decision snapshot of its region (signed, in parts)."""
        with dbmod.reading(self.settings.db) as tx:
            region = device_region(tx, device_id)
            found = devices.format_and_kind(tx, device_id) if region is not None else None
            if found is None or found[1] not in SCANNING_KINDS:
                return
            parts = build_snapshot(tx, device_id, region, self.policy, int(time.time() * 1000))
        for part in parts:
            self._client.publish(topics.device_down(device_id), seal(part, self.key, found[0]), qos=1)
        self._snapshot_sent[device_id] = time.monotonic()

    def _account(self, batch: list[Incoming], outcome: BatchOutcome) -> None:
        m = self.metrics
        now_ms = time.time() * 1000
        m.batches.observe(len(batch))
        for inc in batch:
            m.lag.observe(max(0.0, (now_ms - inc.received_ms) / 1000))
        for d in outcome.delivery_delays_s:
            m.delivery_delay.observe(d)
        m.stored.inc(outcome.stored)
        m.duplicates.inc(outcome.duplicates)
        for reason, n in outcome.rejected.items():
            m.rejected.labels(reason=reason).inc(n)

    def _answer(self, outcome: BatchOutcome) -> None:
        now_ms = int(time.time() * 1000)
        for device_id, items in outcome.receipts.items():
            for i in range(0, len(items), RECEIPT_CHUNK):
                self._notify(device_id, outcome, Receipt(message_id=str(uuid.uuid4()), device_id=device_id, server_time_ms=now_ms, items=items[i : i + RECEIPT_CHUNK]))
                self.metrics.receipts.inc()
        for device_id, notices in outcome.notices.items():
            for notice in notices:
                self._notify(device_id, outcome, notice)
        for device_id, rej in outcome.rejections.items():
            for i in range(0, len(rej), RECEIPT_CHUNK):
                self._notify(device_id, outcome, Rejection(message_id=str(uuid.uuid4()), device_id=device_id, server_time_ms=now_ms, items=rej[i : i + RECEIPT_CHUNK]))

    def _notify(self, device_id: str, outcome: BatchOutcome, message: ServerMessage) -> None:
        payload = seal(message, self.key, outcome.formats.get(device_id, "json"))
        self._client.publish(topics.device_down(device_id), payload, qos=1)




def _record_presence(tx: Tx, device_id: str, online: bool, now_ms: int) -> bool:
    """Record a registered device's presence (and an alert when it went offline); False for an unknown device."""
    if not devices.registrations(tx, [device_id]):
        return False
    devices.set_presence(tx, device_id, online, now_ms)
    if not online:  # the device said goodbye, or the broker published its last will
        raise_alert(
            tx, "device_offline", now_ms,
            f"设备 {device_id} 已离线（断开连接）。", f"Device {device_id} went offline (disconnected).", device_id=device_id,
        )  # fmt: skip
    return True
