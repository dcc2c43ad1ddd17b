"""A loopback TCP relay that throttles what clients send upstream, so a test can catch a
push in the middle of a large blob upload (and kill the pusher there).

It works below HTTP: bytes are copied as they come, the ``Host`` header is untouched,
so a registry's upload ``Location`` points back at the relay.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["SlowProxy"]


class SlowProxy:
    """Relays ``127.0.0.1:<port>`` to ``upstream``; client-to-upstream bytes go at most
    ``rate`` bytes per second (0: no limit). ``sent`` counts them; :meth:`wait_sent`
    blocks until that many went through."""

    def __init__(self, upstream: str, *, rate: int = 0) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.rate = rate
        self.sent = 0
        self._cond = threading.Condition()
        self._stopped = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.getsockname()[1]}"

    def wait_sent(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.sent >= count, timeout)

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._server.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=30)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                if counted and self.rate:
                    time.sleep(len(data) / self.rate)
                dst.sendall(data)
                if counted:
                    with self._cond:
                        self.sent += len(data)
                        self._cond.notify_all()
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
