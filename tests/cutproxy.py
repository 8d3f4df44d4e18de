"""A TCP proxy on loopback that cuts the connection after a given number of bytes."""

from __future__ import annotations

import socket
import threading


class LoopbackProxy:
    """A TCP proxy on loopback port ``port`` to ``target_port``: each accepted
    connection is pumped both ways by ``_pump(src, dst, pair)`` on threads of
    its own (subclasses decide what passes)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]

    def _start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            pair = (client, upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.server.close()


class CutProxy(LoopbackProxy):
    """Forwards to ``target``; after ``budget`` bytes (both directions together), closes."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.budget: int | None = None
        self.forwarded = 0
        self.cut = False
        self._lock = threading.Lock()
        self._start()

    def arm(self, budget: int | None) -> None:
        with self._lock:
            self.budget, self.forwarded, self.cut = budget, 0, False

    def _pump(self, src, dst, pair) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if self.budget is not None and self.forwarded + len(data) > self.budget:
                        data = data[: max(0, self.budget - self.forwarded)]
                        self.cut = True
                    self.forwarded += len(data)
                if data:
                    dst.sendall(data)
                if self.cut:
                    break
        except OSError:
            pass
        finally:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
