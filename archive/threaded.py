"""An aiohttp application served over TLS on its own thread and event loop.

The archive runs three such sites in one process (``bodycam archive serve``): the
docks' mutual-TLS API (archive/server.py), the people's API (archive/people_api.py)
and the station console (archive/console/app.py); tests, the demo and the bench
start them the same way.
"""

from __future__ import annotations

import asyncio
import ssl
import threading

from aiohttp import web

START_TIMEOUT = 30.0  # seconds to wait for the listener (or its error) at start()
STOP_TIMEOUT = 30.0  # seconds to wait for the thread at stop()


class ThreadedSite:
    """Subclasses give :meth:`app` and :meth:`ssl_context`, and may override
    :meth:`alongside` (work that runs beside the site until it stops) and
    ``runner_options`` (keyword arguments of ``web.AppRunner``).

    ``port`` 0 binds a free port; :attr:`port` holds the bound one after
    :meth:`start`, which re-raises whatever stopped the site from listening
    (``OSError`` for a bad address, ``ssl.SSLError`` for bad keys …).
    """

    thread_name = "archive-site"
    runner_options: dict = {}

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def app(self) -> web.Application:
        raise NotImplementedError

    def ssl_context(self) -> ssl.SSLContext:
        raise NotImplementedError

    async def alongside(self, stop: asyncio.Event) -> None:
        """Runs on the site's loop from listening until ``stop`` is set."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def start(self):
        self._thread.start()
        self._ready.wait(START_TIMEOUT)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app(), access_log=None, **self.runner_options)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context())
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        beside = asyncio.create_task(self.alongside(self._stop))
        try:
            await self._stop.wait()
        finally:
            await beside
            await runner.cleanup()

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(STOP_TIMEOUT)
