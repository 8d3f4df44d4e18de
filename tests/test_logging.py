"""Logging reaches journald with its levels (bodycam/logs.py).

The journald tests run a real ``systemd-journald`` in a namespace of its own
(``systemd-journald NAMESPACE``, as systemd-journald@.service does), connect
a stream to its ``stdout`` socket the way systemd-cat and the service
manager do, run ``bodycam`` with that stream as stderr and ``JOURNAL_STREAM``
set, and read the entries back with ``journalctl --namespace``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bodycam.logs import priority, setup_logging, stderr_is_journal

REPO = Path(__file__).resolve().parent.parent
JOURNALD = Path("/lib/systemd/systemd-journald")
BODYCAM = [sys.executable, "-m", "bodycam"]

EMIT = """
import logging, sys
from bodycam.logs import setup_logging
setup_logging(sys.argv[1] if len(sys.argv) > 1 else None)
log = logging.getLogger("bodycam.test")
log.debug("debug line")
log.info("session %s started", "A123456")
log.warning("battery low")
log.error("bay 2 failed\\nsecond line")
log.critical("disk gone")
log.log(25, "between info and warning")
"""


def _need_root_and(tool: Path | str) -> None:
    found = Path(tool).exists() if isinstance(tool, Path) else shutil.which(tool)
    if os.geteuid() == 0 and found:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"needs root and {tool}: `make test` installs systemd and CI runs as root")
    pytest.skip(f"needs root and {tool}")


class Journal:
    """A private systemd-journald: start, stream into it, read it back."""

    def __init__(self) -> None:
        self.namespace = f"bodycamtest{uuid.uuid4().hex[:8]}"
        self.run_dir = Path(f"/run/systemd/journal.{self.namespace}")
        self.proc = subprocess.Popen([str(JOURNALD), self.namespace], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            if (self.run_dir / "stdout").exists():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-journald exited with {self.proc.returncode}")
            time.sleep(0.05)
        else:
            raise RuntimeError("systemd-journald did not create its stdout socket in 10 s")

    def stream(self, identifier: str, default_priority: int = 6) -> socket.socket:
        """A connected stream, after the header systemd-cat sends (level_prefix on)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.run_dir / "stdout"))
        sock.shutdown(socket.SHUT_RD)
        sock.sendall(f"{identifier}\n\n{default_priority}\n1\n0\n0\n0\n".encode())
        return sock

    def run(self, identifier: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        sock = self.stream(identifier)
        st = os.fstat(sock.fileno())
        environ = {**os.environ, **(env or {}), "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        environ.pop("BODYCAM_LOG_LEVEL", None)
        try:
            return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=sock.fileno(), env=environ,
                                  cwd=REPO, timeout=120).returncode
        finally:
            sock.close()

    def entries(self, identifier: str, expect: int) -> list[tuple[int, str]]:
        """(PRIORITY, MESSAGE) of the identifier's entries, once ``expect`` arrived."""
        for _ in range(100):
            out = subprocess.run(["journalctl", f"--namespace={self.namespace}", "-o", "json", "--no-pager",
                                  f"SYSLOG_IDENTIFIER={identifier}"], capture_output=True, text=True)
            found = [(int(e["PRIORITY"]), e["MESSAGE"]) for e in map(json.loads, out.stdout.splitlines())]
            if len(found) >= expect:
                return found
            time.sleep(0.1)
        return found

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for path in Path("/var/log/journal").glob(f"*.{self.namespace}"):
            shutil.rmtree(path, ignore_errors=True)
        for path in Path("/run/log/journal").glob(f"*.{self.namespace}"):
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def journal():
    _need_root_and(JOURNALD)
    _need_root_and("journalctl")
    j = Journal()
    yield j
    j.close()


def test_levels_reach_journald_as_priorities(journal):
    assert journal.run("emit", [sys.executable, "-c", EMIT, "debug"]) == 0
    got = journal.entries("emit", 7)
    assert got == [(7, "bodycam.test: debug line"), (6, "bodycam.test: session A123456 started"),
                   (4, "bodycam.test: battery low"), (3, "bodycam.test: bay 2 failed"), (3, "second line"),
                   (2, "bodycam.test: disk gone"), (4, "bodycam.test: between info and warning")]


def test_default_level_under_journal_is_info(journal):
    assert journal.run("emitdefault", [sys.executable, "-c", EMIT]) == 0
    got = journal.entries("emitdefault", 6)
    assert [p for p, _ in got] == [6, 4, 3, 3, 2, 4]


def test_an_unexpected_traceback_is_critical_on_every_line(journal):
    crash = "from bodycam.logs import setup_logging\nsetup_logging()\n{}['missing']\n"
    assert journal.run("crash", [sys.executable, "-c", crash]) == 1
    got = journal.entries("crash", 3)
    assert got[0] == (2, "bodycam: unexpected error")
    assert got[-1] == (2, "KeyError: 'missing'")
    assert {p for p, _ in got} == {2}


def test_a_bodycam_command_logs_its_outcome_to_the_journal(journal, tmp_path):
    """The real command line: `bodycam selftest` logs each check at its level."""
    config = tmp_path / "sim.toml"
    text = (REPO / "hw-configs/sim.toml").read_text()
    config.write_text(text)
    code = journal.run("selftest", [*BODYCAM, "selftest", "--config", str(config), "--unattended",
                                    "--out", str(tmp_path / "report.json")])
    got = journal.entries("selftest", 3)
    assert code == 0, got
    messages = [m for _, m in got]
    assert (6, next(m for m in messages if m.startswith("device.selftest: camera: PASS"))) in got
    assert any(p == 6 and "SELFTEST PASSED" in m and "config sim.toml" in m for p, m in got), got
    assert not any(m.startswith("<") for m in messages), "a prefix was not parsed"


def test_python_systemd_journal_handler_keeps_fields(journal, tmp_path):
    """Where python-systemd is importable (Debian's python3-systemd), records go
    through its JournalHandler with their fields.  It always writes to
    /run/systemd/journal/socket, so the child runs in a mount namespace of its
    own where that path is the private journald's socket."""
    debian_python = "/usr/bin/python3"
    probe = subprocess.run([debian_python, "-c", "import systemd.journal"], capture_output=True)
    if probe.returncode != 0:
        _need_root_and("python3-systemd (import systemd.journal)")
    _need_root_and("unshare")
    hidden = tmp_path / "journal-socket"
    hidden.touch()
    script = (f"mount --bind {journal.run_dir / 'socket'} {hidden} && mount -t tmpfs tmpfs /run/systemd && "
              f"mkdir /run/systemd/journal && touch /run/systemd/journal/socket && "
              f"mount --bind {hidden} /run/systemd/journal/socket && exec \"$@\"")
    code = journal.run("emithandler", ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                                       debian_python, "-c", EMIT, "info"], env={"PYTHONPATH": str(REPO)})
    assert code == 0
    out = subprocess.run(["journalctl", f"--namespace={journal.namespace}", "-o", "json", "--no-pager",
                          "SYSLOG_IDENTIFIER=bodycam", "LOGGER=bodycam.test"], capture_output=True, text=True)
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(int(e["PRIORITY"]), e["MESSAGE"]) for e in entries] == [
        (6, "session A123456 started"), (4, "battery low"), (3, "bay 2 failed\nsecond line"), (2, "disk gone"),
        (4, "between info and warning")]
    assert {e["CODE_FUNC"] for e in entries} == {"<module>"} and {e["THREAD_NAME"] for e in entries} == {"MainThread"}


# -- the exact lines journald parses, without a journald --------------------------------------


def _run_with_stderr_file(tmp_path: Path, journal_stream: str | None, *args: str) -> str:
    err = tmp_path / "stderr"
    with err.open("wb") as f:
        st = os.fstat(f.fileno())
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "BODYCAM_LOG_LEVEL")}
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream.format(dev=st.st_dev, ino=st.st_ino)
        subprocess.run([sys.executable, "-c", EMIT, *args], stderr=f, env=env, check=True, cwd=REPO)
    return err.read_text()


def test_matching_journal_stream_gives_sd_daemon_prefixes(tmp_path):
    out = _run_with_stderr_file(tmp_path, "{dev}:{ino}", "debug")
    assert out.splitlines() == [
        "<7>bodycam.test: debug line", "<6>bodycam.test: session A123456 started",
        "<4>bodycam.test: battery low", "<3>bodycam.test: bay 2 failed", "<3>second line",
        "<2>bodycam.test: disk gone", "<4>bodycam.test: between info and warning"]


@pytest.mark.parametrize("value", ["{dev}:1", "1:{ino}", "garbage", "", ":"])
def test_other_streams_get_plain_leveled_lines(tmp_path, value):
    """JOURNAL_STREAM inherited by a child whose stderr goes elsewhere, or malformed."""
    lines = _run_with_stderr_file(tmp_path, value, "info").splitlines()
    assert not any(line.startswith("<") for line in lines)
    assert [line.split(" ", 3)[2:] for line in lines[:2]] == [
        ["INFO", "bodycam.test: session A123456 started"], ["WARNING", "bodycam.test: battery low"]]


def test_terminal_default_is_warning(tmp_path):
    lines = _run_with_stderr_file(tmp_path, None).splitlines()
    assert [line.split(" ", 2)[2] for line in lines if line[:4].isdigit()] == [
        "WARNING bodycam.test: battery low", "ERROR bodycam.test: bay 2 failed",
        "CRITICAL bodycam.test: disk gone"]


def test_priorities_follow_syslog():
    assert [priority(n) for n in (0, 10, 15, 20, 25, 30, 40, 50, 60)] == [7, 7, 6, 6, 4, 4, 3, 2, 1]


def test_setup_twice_keeps_one_handler_and_bad_levels_are_refused(tmp_path):
    import logging

    before = list(logging.getLogger().handlers)
    try:
        first = setup_logging("info", environ={})
        second = setup_logging("debug", environ={})
        handlers = logging.getLogger().handlers
        assert second in handlers and first not in handlers
        with pytest.raises(ValueError, match="not one of"):
            setup_logging("loud", environ={})
        with pytest.raises(ValueError, match="'loud'"):
            setup_logging(None, environ={"BODYCAM_LOG_LEVEL": "loud"})
    finally:
        for h in list(logging.getLogger().handlers):
            if h not in before:
                logging.getLogger().removeHandler(h)


def test_bad_log_level_on_the_command_line_is_a_usage_error():
    out = subprocess.run([*BODYCAM, "--log-level", "loud", "config", "check", "x.toml"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "Invalid value for '--log-level'" in out.stderr
    out = subprocess.run([*BODYCAM, "config", "check", str(REPO / "hw-configs/sim.toml")],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "BODYCAM_LOG_LEVEL": "loud"})
    assert out.returncode == 2 and "log level 'loud'" in out.stderr


def test_stderr_is_journal_needs_a_real_file(tmp_path):
    import io

    assert not stderr_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})
    with (tmp_path / "f").open("w") as f:
        st = os.fstat(f.fileno())
        assert stderr_is_journal(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not stderr_is_journal(f, {})
