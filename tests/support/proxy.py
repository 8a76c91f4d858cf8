"""A TCP proxy between MQTT clients and a broker, for breaking the network on purpose.

One background thread runs a selector loop over the listening socket and every proxied connection;
the public methods hand their work to that thread and wait for it, so they are safe to call from tests
(and from paho callbacks) while traffic flows.

Failure modes:

* ``cut()``      every current connection is reset (SO_LINGER 0, so both peers get an RST rather than a
                 clean FIN); new connections are accepted and forwarded as usual.
* ``stall()``    nothing is forwarded in either direction, but every socket stays open: the peers see
                 a link that hangs without closing (they can only notice through keepalive timeouts).
                 Bytes are HELD, not dropped: the proxy stops reading, so they wait in its buffers and in
                 the kernel's socket buffers, and are delivered, in order, after ``resume()`` (unless a
                 peer gave up and closed meanwhile). New connections are accepted while stalled (the
                 proxy also connects to the target) but nothing flows on them until ``resume()``.
* ``set_refusing(True)``  new connections are accepted and immediately reset, as when the network or
                 the broker is down; existing connections are not touched (``cut()`` them as well to
                 emulate a full outage). A failed connection to the target also resets the client.
"""

from __future__ import annotations

import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

_CHUNK = 65536
#: Bytes buffered in the proxy per direction before it stops reading (backpressure).
_BUFFER_LIMIT = 1 << 20
_LINGER_RST = struct.pack("ii", 1, 0)


def _abort(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


class _Pipe:
    """One proxied connection: the client's socket and ours to the target."""

    __slots__ = ("client", "upstream", "to_up", "to_down", "eof_from")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.to_up = bytearray()  # client -> target, not yet sent
        self.to_down = bytearray()  # target -> client, not yet sent
        self.eof_from: socket.socket | None = None  # the side that closed first; flush to the other, then close


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port`` with switchable failures."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._requested_port = port
        self.connect_timeout = connect_timeout
        self.port: int | None = None
        # Counters (written by the proxy thread only).
        self.bytes_up = 0  # client -> target, forwarded
        self.bytes_down = 0  # target -> client, forwarded
        self.accepted = 0  # connections accepted and connected to the target
        self.refused = 0  # connections reset at once (refusing, or the target could not be reached)
        self.cuts = 0  # connections reset by cut()
        self._stalled = False
        self._refusing = False
        self._pipes: set[_Pipe] = set()
        self._masks: dict[socket.socket, int] = {}
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], threading.Event, list[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._error: BaseException | None = None

    # -- public API --------------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self._requested_port))
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=f"TcpProxy:{self.port}", daemon=True)
        self._thread.start()
        return self

    @property
    def address(self) -> tuple[str, int]:
        assert self.port is not None, "proxy not started"
        return self.host, self.port

    @property
    def stalled(self) -> bool:
        return self._stalled

    @property
    def refusing(self) -> bool:
        return self._refusing

    @property
    def active_connections(self) -> int:
        return self._call(lambda: len(self._pipes))

    def cut(self) -> int:
        """Reset every current connection (RST both ways); returns how many were cut."""

        def do() -> int:
            pipes = list(self._pipes)
            for pipe in pipes:
                self._close_pipe(pipe, abort=True)
            self.cuts += len(pipes)
            return len(pipes)

        return self._call(do)

    def stall(self) -> None:
        """Stop forwarding in both directions, keeping every socket open (bytes are held, see module doc)."""
        self._call(lambda: self._set_stalled(True))

    def resume(self) -> None:
        """Forward again, delivering what was held during the stall."""
        self._call(lambda: self._set_stalled(False))

    def set_refusing(self, refusing: bool) -> None:
        """While True, new connections are reset as soon as they are accepted."""

        def do() -> None:
            self._refusing = refusing

        self._call(do)

    def close(self) -> None:
        """Reset every connection, stop the thread and release every socket. Safe to call twice."""
        if self._thread is not None and self._thread.is_alive():
            self._closing = True
            self._wake()
            self._thread.join(10)
            if self._thread.is_alive():
                raise RuntimeError("proxy thread did not stop")
        self._release()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("proxy thread failed") from error

    def __enter__(self) -> TcpProxy:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        flags = [f for f, on in (("stalled", self._stalled), ("refusing", self._refusing)) if on]
        return (
            f"<TcpProxy {self.host}:{self.port} -> {self.target_host}:{self.target_port}"
            f"{' ' + ','.join(flags) if flags else ''} up={self.bytes_up} down={self.bytes_down}>"
        )

    # -- running commands in the proxy thread ------------------------------------------------------

    def _call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError(f"proxy not running{' (its thread failed)' if self._error else ''}")
        if threading.current_thread() is self._thread:
            return fn()
        done = threading.Event()
        result: list[Any] = []
        self._commands.put((fn, done, result))
        self._wake()
        if not done.wait(timeout):
            raise RuntimeError("proxy thread did not answer")
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result[0] if result else None

    def _wake(self) -> None:
        try:
            assert self._wake_w is not None
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already has a pending wake-up, or closing

    def _run_commands(self) -> None:
        while True:
            try:
                fn, done, result = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                result.append(fn())
            except Exception as e:  # noqa: BLE001 - handed back to the caller
                result.append(e)
            done.set()

    # -- the loop ----------------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._selector is not None
        try:
            while not self._closing:
                for key, mask in self._selector.select(timeout=0.5):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        pipe, sock = key.data
                        if pipe in self._pipes:
                            self._service(pipe, sock, mask)
                self._run_commands()
        except BaseException as e:  # noqa: BLE001 - reported by close()
            self._error = e
        finally:
            for pipe in list(self._pipes):
                self._close_pipe(pipe, abort=True)
            self._run_commands()  # answer waiters (they see the proxy as stopped)

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNABORTED: the client gave up before we got to it
            if self._refusing:
                _abort(client)
                self.refused += 1
                continue
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), timeout=self.connect_timeout)
            except OSError:
                _abort(client)
                self.refused += 1
                continue
            for s in (client, upstream):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(client, upstream)
            self._pipes.add(pipe)
            self.accepted += 1
            self._update(pipe)

    def _service(self, pipe: _Pipe, sock: socket.socket, mask: int) -> None:
        other = pipe.upstream if sock is pipe.client else pipe.client
        outgoing = pipe.to_up if sock is pipe.client else pipe.to_down  # bytes read from sock, for other
        try:
            if mask & selectors.EVENT_READ and not self._stalled and pipe.eof_from is None:
                try:
                    data = sock.recv(_CHUNK)
                except (BlockingIOError, InterruptedError):
                    data = None
                if data == b"":
                    pipe.eof_from = sock
                elif data:
                    outgoing += data
                    self._send(pipe, other)
            if mask & selectors.EVENT_WRITE and not self._stalled:
                self._send(pipe, sock)
        except OSError:
            self._close_pipe(pipe, abort=True)
            return
        if pipe.eof_from is not None and not self._stalled:
            toward = pipe.upstream if pipe.eof_from is pipe.client else pipe.client
            if not (pipe.to_up if toward is pipe.upstream else pipe.to_down):
                self._close_pipe(pipe, abort=False)
                return
        self._update(pipe)

    def _send(self, pipe: _Pipe, sock: socket.socket) -> None:
        """Send what is buffered for ``sock``; raises OSError if the connection broke."""
        buf = pipe.to_up if sock is pipe.upstream else pipe.to_down
        while buf:
            try:
                n = sock.send(buf)
            except (BlockingIOError, InterruptedError):
                return
            del buf[:n]
            if sock is pipe.upstream:
                self.bytes_up += n
            else:
                self.bytes_down += n

    def _interest(self, pipe: _Pipe, sock: socket.socket) -> int:
        if self._stalled:
            return 0
        incoming = pipe.to_up if sock is pipe.client else pipe.to_down
        pending = pipe.to_down if sock is pipe.client else pipe.to_up
        mask = 0
        if pipe.eof_from is None and len(incoming) < _BUFFER_LIMIT:
            mask |= selectors.EVENT_READ
        if pending:
            mask |= selectors.EVENT_WRITE
        return mask

    def _update(self, pipe: _Pipe) -> None:
        assert self._selector is not None
        for sock in (pipe.client, pipe.upstream):
            want = self._interest(pipe, sock)
            have = self._masks.get(sock, 0)
            if want == have:
                continue
            if have == 0:
                self._selector.register(sock, want, (pipe, sock))
            elif want == 0:
                self._selector.unregister(sock)
            else:
                self._selector.modify(sock, want, (pipe, sock))
            if want:
                self._masks[sock] = want
            else:
                self._masks.pop(sock, None)

    def _set_stalled(self, stalled: bool) -> None:
        self._stalled = stalled
        for pipe in list(self._pipes):
            if stalled:
                self._update(pipe)
                continue
            # Resuming: flush what was held, finish closes that waited, then watch again.
            try:
                self._send(pipe, pipe.upstream)
                self._send(pipe, pipe.client)
            except OSError:
                self._close_pipe(pipe, abort=True)
                continue
            if pipe.eof_from is not None:
                toward = pipe.upstream if pipe.eof_from is pipe.client else pipe.client
                if not (pipe.to_up if toward is pipe.upstream else pipe.to_down):
                    self._close_pipe(pipe, abort=False)
                    continue
            self._update(pipe)

    def _close_pipe(self, pipe: _Pipe, *, abort: bool) -> None:
        assert self._selector is not None
        self._pipes.discard(pipe)
        for sock in (pipe.client, pipe.upstream):
            if self._masks.pop(sock, 0):
                self._selector.unregister(sock)
            if abort:
                _abort(sock)
            else:
                sock.close()

    def _release(self) -> None:
        """Close what the thread does not own (listener, wake-up pair, selector)."""
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for s in (self._listener, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._listener = self._wake_r = self._wake_w = None
