"""The local interface on loopback: the device's own software submits events and reads status over HTTP.

    POST /v1/events   {"type": "enterprise_scanned", "event_id": optional, ...fields}
                      202 accepted (on disk) | 200 already stored under that event id
                      400 invalid | 507 outbox or storage full | 413 body too large
    POST /v1/scan     {"officer_id", "field", one of "code_text" / "image_path" / "image_base64",
                       "matter", "reason", "exception_basis": {"kind", "reference"}}
                      200 the decision (the server's, or "provisional": true from the snapshot)
    POST /v1/context  {"officer_id", "inspection_id", "case_no", "collector", "proves"}: labels added to the
                      metadata of recordings from now on (null clears one); 200 the context
    GET  /v1/status   outbox depth, oldest unsent age, last receipt, connection state, ...
    GET  /v1/health   200 "ok"
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import logging
import threading
from http import HTTPStatus
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec

from edge_agent.agent import Agent, Submission
from edge_agent.errors import EdgeAgentError, InvalidEvent, OutboxFull
from edge_agent.scanner import Scanner, ScanError
from protocol.messages import ExceptionBasis

log = logging.getLogger(__name__)

#: Largest request body accepted (events are small; media files never pass through here).
MAX_BODY = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("local api: " + format, *args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/v1/status":
            self._send(200, self.server.agent.status())
        elif self.path == "/v1/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": "not_found", "message": f"no such path {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path not in ("/v1/events", "/v1/scan", "/v1/context"):
            self._send(404, {"error": "not_found", "message": f"no such path {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._send(400, {"error": "bad_request", "message": "Content-Length is not a number"})
            return
        if length > MAX_BODY:
            self.close_connection = True
            self._send(413, {"error": "too_large", "message": f"request body of {length} bytes exceeds {MAX_BODY}"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self._send(400, {"error": "bad_json", "message": f"request body is not JSON: {e}"})
            return
        if self.path == "/v1/scan":
            self._scan(body)
            return
        if self.path == "/v1/context":
            if not isinstance(body, dict) or not all(isinstance(v, (str, type(None))) for v in body.values()):
                self._send(400, {"error": "invalid_context", "message": "expected a JSON object of labels (strings, or null to clear)"})
                return
            try:
                self._send(200, self.server.agent.set_context(**body))
            except InvalidEvent as e:
                self._send(400, {"error": e.code, "message": str(e)})
            return
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            self._send(400, {"error": "invalid_event", "message": 'expected a JSON object with a string "type"'})
            return
        typ = body.pop("type")
        event_id = body.pop("event_id", None)
        if event_id is not None and not isinstance(event_id, str):
            self._send(400, {"error": "invalid_event", "message": '"event_id" must be a string'})
            return
        try:
            acc = self.server.agent.submit(Submission(typ, body, event_id))
        except InvalidEvent as e:
            self._send(400, {"error": e.code, "message": str(e)})
        except OutboxFull as e:
            self._send(HTTPStatus.INSUFFICIENT_STORAGE, {"error": e.code, "message": str(e)})
        except EdgeAgentError as e:
            self._send(503, {"error": e.code, "message": str(e)})
        else:
            status = 200 if acc.duplicate else 202
            self._send(status, {"status": "duplicate" if acc.duplicate else "accepted", "event_id": acc.event_id, "seq": acc.seq})


    def _scan(self, body: object) -> None:
        if not isinstance(body, dict):
            self._send(400, {"error": "invalid_scan", "message": "expected a JSON object"})
            return
        try:
            req = msgspec.convert(body, ScanBody)
            image = None
            if req.image_path is not None:
                image = Path(req.image_path).read_bytes()
            elif req.image_base64 is not None:
                image = base64.b64decode(req.image_base64, validate=True)
            result = self.server.scanner.scan(
                req.officer_id, req.field, code_text=req.code_text, image=image, matter=req.matter, reason=req.reason, exception=req.exception_basis
            )
        except msgspec.ValidationError as e:
            self._send(400, {"error": "invalid_scan", "message": str(e)})
        except (OSError, binascii.Error) as e:
            self._send(400, {"error": "invalid_scan", "message": f"cannot read the image: {e}"})
        except OutboxFull as e:
            self._send(HTTPStatus.INSUFFICIENT_STORAGE, {"error": e.code, "message": str(e)})
        except EdgeAgentError as e:
            self._send(422 if isinstance(e, ScanError) else 503, {"error": e.code, "message": str(e)})
        else:
            self._send(200, result)


class ScanBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A scan request from the device's own software."""

    officer_id: str
    field: str
    code_text: str | None = None
    image_path: str | None = None
    image_base64: str | None = None
    matter: str = ""
    reason: str = ""
    exception_basis: ExceptionBasis | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], agent: Agent, scanner: Scanner) -> None:
        self.agent = agent
        self.scanner = scanner
        super().__init__(addr, _Handler)


class LocalApi:
    """Serves the local interface in a background thread."""

    def __init__(self, agent: Agent, scanner: Scanner, host: str, port: int) -> None:
        try:
            self._server = _Server((host, port), agent, scanner)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise EdgeAgentError(
                    f"the local interface cannot listen on {host}:{port}: the port is taken (another agent or program). "
                    "Set local_api.port in device.toml to a free port, or to 0 to let the agent pick one (written to local_api.port)"
                ) from None
            raise EdgeAgentError(f"the local interface cannot listen on {host}:{port} (local_api.host, local_api.port in device.toml): {e.strerror}") from None
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True)

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
