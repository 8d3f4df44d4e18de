"""Offload throughput (pull + verify + archive commit + receipts) beside rsync
copying the same files over loopback in the same run; the same over a link
limited to LINK_MB_S (both through one throttling proxy); bytes re-sent after a cut.

Targets (issue 5): ratio >= 0.9; re-sent after a cut <= one fragment.  The
limited link shows what the dock's pipeline is for: on a real link the pull
dominates, and verification, commit and receipts should hide behind it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import make_agency  # noqa: E402
from tests.cutproxy import CutProxy, LoopbackProxy  # noqa: E402
from tests.dockrig import make_rig  # noqa: E402
from device.docklink import DockLink  # noqa: E402
from device.sealing.state import SealingState  # noqa: E402

SEGMENTS, FRAGMENTS, FRAGMENT = 4, 30, 1_000_000  # 2 min of 8 Mbit/s footage
# USB 2.0 high speed signals 480 Mbit/s (60 MB/s); CDC-NCM gadget Ethernet on a Pi
# carries less.  An assumption of this bench, not a measurement of a recorder.
LINK_MB_S = 40
SERVE = """
import sys, threading
from pathlib import Path
from device.sealing.clock import ManualClock
from device.docklink import DockLink
from device.sealing.state import SealingState
state = SealingState.open(Path(sys.argv[1]), ManualClock())
print(DockLink(state).start("127.0.0.1"), flush=True)
threading.Event().wait(600)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrottledLink(LoopbackProxy):
    """A TCP proxy on loopback whose connections together carry at most ``rate``
    bytes per second (the one cable between a recorder and its bay)."""

    def __init__(self, target_port: int, rate: float) -> None:
        super().__init__(target_port)
        self.rate = rate
        self._free = 0.0  # when the link is next free (perf_counter seconds)
        self._lock = threading.Lock()
        self._start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    start = max(time.perf_counter(), self._free)
                    self._free = start + len(data) / self.rate
                wait = self._free - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def rsync_seconds(source: Path, work: Path, *flags: str, link_rate: float | None = None) -> float:
    port = _free_port()
    conf = work / "rsyncd.conf"
    conf.write_text(f"use chroot = no\n[footage]\npath = {source}\nread only = yes\n")
    daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--port={port}", f"--config={conf}",
                               "--address=127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    link = ThrottledLink(port, link_rate) if link_rate else None
    try:
        time.sleep(0.5)
        target = work / f"rsync-copy{'-'.join(flags)}{'-link' if link else ''}"
        start = time.perf_counter()
        subprocess.run(["rsync", "-a", *flags, f"rsync://127.0.0.1:{link.port if link else port}/footage/",
                        str(target)], check=True)
        return time.perf_counter() - start
    finally:
        if link:
            link.close()
        daemon.terminate()
        daemon.wait()


def dock_seconds(rig, link_rate: float | None = None) -> tuple[float, dict[str, float]]:
    """One docking of everything on the rig's recorder, the recorder in its own process
    (as on a real link), optionally through a ThrottledLink; (seconds, seconds per phase)."""
    rig.link.stop()
    rig.sealing.close()  # the recorder process owns the state now
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(rig.state)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    link = None
    try:
        port = int(server.stdout.readline())
        if link_rate:
            link = ThrottledLink(port, link_rate)
            port = link.port
        phases: dict[str, float] = {}
        mark = [time.perf_counter(), "connect"]

        def on_progress(p) -> None:
            now = time.perf_counter()
            phases[mark[1]] = phases.get(mark[1], 0.0) + now - mark[0]
            mark[:] = [now, p.phase]

        start = time.perf_counter()
        progress = asyncio.run(rig.session(f"https://127.0.0.1:{port}", on_progress=on_progress).run())
        seconds = time.perf_counter() - start
    finally:
        if link:
            link.close()
        server.kill()
        server.wait()
        rig.sealing = SealingState.open(rig.state, rig.clock)
        rig.link = DockLink(rig.sealing)
        rig.port = rig.link.start("127.0.0.1")
    assert progress.outcome == "done" and progress.segments_archived == SEGMENTS, progress
    return seconds, phases


def run() -> list[tuple[str, str, str]]:
    if shutil.which("rsync") is None:
        return [("dock offload", "skipped", "rsync missing: apt-get install rsync")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bodycam-bench-dock-") as tmp:
        work = Path(tmp)
        agency = make_agency(work / "agency")
        rig = make_rig(agency, work / "rig")
        try:
            rig.record(SEGMENTS, FRAGMENTS, FRAGMENT)
            total = sum(p.stat().st_size for p in (rig.state / "segments").iterdir())
            snapshot = work / "snapshot"
            shutil.copytree(rig.state / "segments", snapshot)
            rsync = rsync_seconds(snapshot, work)
            rsync_fsync = rsync_seconds(snapshot, work, "--fsync")
            dock, phases = dock_seconds(rig)
            rsync_mb, fsync_mb, dock_mb = total / rsync / 1e6, total / rsync_fsync / 1e6, total / dock / 1e6
            rows.append(("rsync over loopback (baseline)", f"{rsync_mb:,.0f} MB/s", f"{total / 1e6:.0f} MB"))
            rows.append(("rsync --fsync over loopback", f"{fsync_mb:,.0f} MB/s", ""))
            rows.append(("dock offload: pull+verify+archive+receipts", f"{dock_mb:,.0f} MB/s",
                         f"{dock_mb / rsync_mb:.2f} x rsync, {dock_mb / fsync_mb:.2f} x rsync --fsync "
                         f"(target >= 0.9 x rsync: {'OK' if dock_mb / rsync_mb >= 0.9 else 'MISSED'})"))
            rows.append(("  of which", ", ".join(f"{k} {v:.2f} s" for k, v in phases.items() if v >= 0.01), ""))

            rig.record(SEGMENTS, FRAGMENTS, FRAGMENT)
            rate = LINK_MB_S * 1e6
            rsync_link = rsync_seconds(snapshot, work, link_rate=rate)
            dock_link, phases = dock_seconds(rig, rate)
            rows.append((f"rsync over a {LINK_MB_S} MB/s link (baseline)", f"{total / rsync_link / 1e6:,.0f} MB/s", ""))
            ratio = rsync_link / dock_link
            rows.append((f"dock offload over a {LINK_MB_S} MB/s link (a later docking)",
                         f"{total / dock_link / 1e6:,.0f} MB/s",
                         f"{ratio:.2f} x rsync (target >= 0.9 x rsync: {'OK' if ratio >= 0.9 else 'MISSED'})"))
            rows.append(("  of which", ", ".join(f"{k} {v:.2f} s" for k, v in phases.items() if v >= 0.01), ""))

            rig.record(SEGMENTS, FRAGMENTS, FRAGMENT)
            total = sum(p.stat().st_size for p in (rig.state / "segments").iterdir())
            proxy = CutProxy(rig.port)
            proxy.arm(total // 2)
            url = f"https://127.0.0.1:{proxy.port}"
            first = rig.session(url)
            try:
                asyncio.run(first.run())
            except Exception:
                pass
            proxy.arm(None)
            second = rig.session(url)
            asyncio.run(second.run())
            resent = first.progress.bytes_pulled + second.progress.bytes_pulled - total
            resent -= sum(p.stat().st_size for p in (rig.state / "seallog").iterdir()) * 2  # logs grow
            rows.append(("bytes re-sent after a cut at 50 %", f"{max(0, resent):,} bytes",
                         f"resumed {second.progress.bytes_resumed:,} bytes in place (target <= one "
                         f"fragment, {FRAGMENT:,}: {'OK' if resent <= FRAGMENT else 'MISSED'})"))
            proxy.close()
        finally:
            rig.close()
    return rows
