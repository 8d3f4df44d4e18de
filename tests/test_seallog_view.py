"""``bodycam log``: the seal log as a table or JSON, read through the verifier
(bodycam/seallog_view.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from bodycam.cli import main
from device.sealing.clock import ManualClock
from device.sealing.format import REC_LOG_ENTRY
from device.sealing.seallog import log_files
from device.sealing.state import SealingState

from .conftest import make_agency
from .mutate import records, rewrite_signed

REPO = Path(__file__).resolve().parent.parent


def run_log(agency, *args: str):
    result = CliRunner().invoke(main, ["log", "--ca", str(agency.ca_cert_path), *map(str, args)])
    return result


def as_json(agency, *args):
    result = run_log(agency, "--json", *args)
    return result, json.loads(result.stdout)


def test_table_lists_every_event_of_a_recording(agency, recording):
    root, names = recording
    result = run_log(agency, root)
    assert result.exit_code == 0, result.output + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"seal log of A123456 in {root}: 10 entries, verified"
    rows = [line.split() for line in lines[2:]]
    assert [r[2] for r in rows] == ["boot"] + ["segment-opened", "segment-sealed"] * 4 + ["shutdown"]
    assert [int(r[0]) for r in rows] == list(range(10))
    assert {r[3] for r in rows} == {"ok"} and result.stderr == ""
    sealed = [r for r in rows if r[2] == "segment-sealed"]
    assert [r[4] for r in sealed] == names


def test_json_carries_each_entry_and_its_status(agency, recording):
    root, names = recording
    result, doc = as_json(agency, root)
    assert result.exit_code == 0
    assert doc["format"] == "bodycam-log/1" and doc["device"] == "A123456"
    assert doc["seal_log"] == {"status": "verified", "reasons": [], "entries": len(doc["entries"]), "unverified": 0,
                               "unreadable": 0}
    assert [e["seq"] for e in doc["entries"]] == list(range(len(doc["entries"])))
    assert doc["entries"][0]["event"] == "boot" and doc["entries"][-1]["event"] == "shutdown"
    assert all(e["status"] == "verified" for e in doc["entries"])
    sealed = [e for e in doc["entries"] if e["event"] == "segment-sealed"]
    assert [e["segment"] for e in sealed] == names and len(sealed[0]["data"]["digest"]) == 64


def test_filters_by_event_time_and_segment(agency, recording):
    root, names = recording
    _, everything = as_json(agency, root)
    entries = everything["entries"]
    _, doc = as_json(agency, root, "--event", "segment-opened", "--event", "shutdown")
    assert [e["event"] for e in doc["entries"]] == ["segment-opened"] * 4 + ["shutdown"]
    _, doc = as_json(agency, root, "--segment", names[2])
    assert [e["event"] for e in doc["entries"]] == ["segment-opened", "segment-sealed"]
    _, by_seq = as_json(agency, root, "--segment", "2")
    assert by_seq["entries"] == doc["entries"]
    # a window around the second segment's entries, from the entries' own times
    start, end = entries[3]["utc"], entries[5]["utc"]
    _, doc = as_json(agency, root, "--since", start, "--until", end)
    assert [e["seq"] for e in doc["entries"]] == [e["seq"] for e in entries
                                                  if start <= e["utc"] < end] and doc["entries"]
    _, doc = as_json(agency, root, "--since", "2026-11-27")
    assert len(doc["entries"]) == len(entries)  # ManualClock starts on 2026-11-27
    _, doc = as_json(agency, root, "--until", "2026-11-27T00:00:00+00:00")
    assert doc["entries"] == []
    result = run_log(agency, root, "--since", "yesterday")
    assert result.exit_code == 2 and "--since 'yesterday': expected an ISO 8601 time" in result.stderr


def _entry_offsets(path: Path) -> list[int]:
    return [r.offset for r in records(path) if r.rtype == REC_LOG_ENTRY]


def _forge_monotonic_time(obj: dict) -> None:
    """A forger's edit that format v2's parser accepts (the value of a known field):
    only the signature can tell."""
    obj["mono_ns"] = str(int(obj["mono_ns"]) + 1)


def test_entries_after_a_forged_one_are_marked_unverified(agency, recording):
    root, _ = recording
    log_file = root / "seallog" / log_files(root / "seallog")[0]
    rewrite_signed(log_file, REC_LOG_ENTRY, _forge_monotonic_time, nth=4)
    result, doc = as_json(agency, root)
    assert result.exit_code == 1
    status = [(e["seq"], e["status"]) for e in doc["entries"]]
    assert status[:4] == [(i, "verified") for i in range(4)]
    assert all(s == "unverified" for _, s in status[4:]) and len(status) > 5
    assert doc["seal_log"]["unverified"] == len(status) - 4
    assert any("entry 4" in r and "signature does not verify" in r for r in doc["seal_log"]["reasons"])
    assert "entries from seq 4 on are UNVERIFIED" in result.stderr
    table = run_log(agency, root)
    assert table.exit_code == 1
    marks = [line.split()[3] for line in table.stdout.splitlines()[2:]]
    assert marks[:4] == ["ok"] * 4 and set(marks[4:]) == {"UNVERIFIED"}
    # filtering never hides the warning
    table = run_log(agency, root, "--event", "boot")
    assert "UNVERIFIED" in table.stderr and table.exit_code == 1


def test_an_entry_the_parser_refuses_does_not_hide_the_rest(agency, recording):
    """An unknown field (format v2's total parser refuses the record before any
    signature check): the record is counted, not shown; the entries after it are
    shown UNVERIFIED, the verifier's reason is printed and the exit status is 1."""
    root, _ = recording
    log_file = root / "seallog" / log_files(root / "seallog")[0]
    rewrite_signed(log_file, REC_LOG_ENTRY, lambda obj: obj["data"].update(forged=True), nth=4)
    result, doc = as_json(agency, root)
    assert result.exit_code == 1, result.stderr
    assert doc["seal_log"]["status"] == "broken" and doc["seal_log"]["unreadable"] == 1
    status = [(e["seq"], e["status"]) for e in doc["entries"]]
    assert status[:4] == [(i, "verified") for i in range(4)]
    assert 4 not in [seq for seq, _ in status]
    assert status[4:] and all(s == "unverified" for _, s in status[4:]), status
    assert any("forged" in r for r in doc["seal_log"]["reasons"]), doc["seal_log"]["reasons"]
    assert "1 entry record(s) do not parse" in result.stderr
    table = run_log(agency, root, "--event", "boot")
    assert table.exit_code == 1 and "do not parse" in table.stderr


def test_a_deleted_entry_breaks_the_chain_from_there(agency, recording):
    root, _ = recording
    log_file = root / "seallog" / log_files(root / "seallog")[0]
    offsets = _entry_offsets(log_file)
    data = log_file.read_bytes()
    log_file.chmod(0o644)
    log_file.write_bytes(data[:offsets[6]] + data[offsets[7]:])  # remove entry 6
    result, doc = as_json(agency, root)
    assert result.exit_code == 1
    assert [e["status"] for e in doc["entries"]][:6] == ["verified"] * 6
    assert {e["status"] for e in doc["entries"][6:]} == {"unverified"}
    assert any("sequence number 7 where 6 was expected" in r for r in doc["seal_log"]["reasons"])


def test_another_agency_trusts_nothing(recording, tmp_path):
    root, _ = recording
    other = make_agency(tmp_path / "other")
    result, doc = as_json(other, root)
    assert result.exit_code == 1 and doc["entries"]
    assert {e["status"] for e in doc["entries"]} == {"unverified"}
    assert doc["seal_log"]["reasons"] and "UNVERIFIED" in result.stderr


def test_a_log_torn_by_power_loss_is_whole_up_to_the_tear(agency, recording):
    root, _ = recording
    log_file = root / "seallog" / log_files(root / "seallog")[-1]
    data = log_file.read_bytes()
    log_file.chmod(0o644)
    log_file.write_bytes(data[:-10])
    result, doc = as_json(agency, root)
    assert result.exit_code == 0
    assert doc["seal_log"]["status"] == "truncated" and doc["seal_log"]["unverified"] == 0
    assert doc["entries"][-1]["event"] != "shutdown"
    assert "record torn at offset" in result.stderr and "power loss" in result.stderr, result.stderr


def test_bad_folders_are_named(agency, tmp_path, recording):
    root, _ = recording
    result = run_log(agency, tmp_path)
    assert result.exit_code == 2 and "no identity/device.crt" in result.stderr
    fifo_root = tmp_path / "fifo"
    shutil.copytree(root, fifo_root)
    os.mkfifo(fifo_root / "seallog" / "999999999999-0000000000000000.log")
    result = run_log(agency, fifo_root)
    assert result.exit_code == 2 and "999999999999-0000000000000000.log: not a regular file" in result.stderr
    link_root = tmp_path / "link"
    shutil.copytree(root, link_root)
    name = log_files(link_root / "seallog")[0]
    (link_root / "seallog" / name).unlink()
    (link_root / "seallog" / name).symlink_to(root / "seallog" / name)
    result = run_log(agency, link_root)
    assert result.exit_code == 2 and f"{name}: cannot read" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_prints_a_demo_recordings_events(tmp_path):
    """The real recorder (PyAV test pattern, tone) via `bodycam demo --no-dock`."""
    result = CliRunner().invoke(main, ["demo", "--workdir", str(tmp_path / "demo"), "--seconds", "6",
                                       "--segment-seconds", "2", "--no-dock"])
    assert result.exit_code == 0, result.output
    ca = tmp_path / "demo/keys/ca/ca.crt"
    out = CliRunner().invoke(main, ["log", "--ca", str(ca), str(tmp_path / "demo/recorder")])
    assert out.exit_code == 0, out.stdout + out.stderr
    events = [line.split()[2] for line in out.stdout.splitlines()[2:]]
    for kind in ("boot", "record-start", "segment-opened", "segment-sealed", "notify", "mark", "photo",
                 "record-stop", "shutdown"):
        assert kind in events, (kind, events)
    assert events.index("record-start") < events.index("notify") < events.index("record-stop")


class LineReader:
    """Lines of a child's stdout as they come, with a deadline (a thread, so
    that Python's own buffering never hides a line that already arrived)."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in stream], daemon=True).start()

    def take(self, count: int, seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        out = []
        while len(out) < count:
            try:
                out.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out


def test_follow_prints_entries_as_a_running_recorder_appends_them(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "F000001")
    clock = ManualClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    sealing = SealingState.open(state, clock)  # the recorder is running: it holds the state
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bodycam", "log", "--ca", str(agency.ca_cert_path),
                                 "--follow", "--json", "--interval", "0.1", "--event", "mark",
                                 "--event", "boot", str(state)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        reader = LineReader(proc.stdout)
        try:
            first = reader.take(1, 60)
            assert [json.loads(line)["event"] for line in first] == ["boot"]
            clock.advance(5)
            sealing.log_event("mark", {"kind": "mark", "recording": False})
            sealing.log_event("notify", {})  # filtered out
            clock.advance(5)
            sealing.log_event("mark", {"kind": "refusal", "recording": False})
            more = [json.loads(line) for line in reader.take(2, 60)]
            assert [(e["event"], e["data"]["kind"], e["status"]) for e in more] == [
                ("mark", "mark", "verified"), ("mark", "refusal", "verified")]
            assert more[1]["seq"] == more[0]["seq"] + 2
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        err = proc.stderr.read()
        assert proc.returncode == 0, err
        assert reader.take(1, 0.5) == []  # nothing after the filter
    finally:
        sealing.close()


def test_follow_reports_a_log_that_stops_verifying(agency, recording):
    """An entry rewritten while watched: the warning comes on stderr, and the exit status is 1."""
    root, _ = recording
    proc = subprocess.Popen([sys.executable, "-m", "bodycam", "log", "--ca", str(agency.ca_cert_path),
                             "--follow", "--interval", "0.1", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    out = LineReader(proc.stdout)
    err = LineReader(proc.stderr)
    try:
        assert len(out.take(12, 60)) == 12  # title, header, 10 entries
        log_file = root / "seallog" / log_files(root / "seallog")[0]
        rewrite_signed(log_file, REC_LOG_ENTRY, _forge_monotonic_time, nth=2)
        warnings = err.take(3, 60)
        assert warnings[0].startswith("bodycam log: WARNING: entries already shown were removed or changed")
        assert "entries from seq 2 on are UNVERIFIED" in warnings[1], warnings
        assert "entry 2" in warnings[2] and "signature does not verify" in warnings[2], warnings
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 1


def test_long_values_are_shortened_in_the_table_and_whole_in_json(agency, tmp_path):
    """A dock-signed message (PEM certificate, base64 payload and signature), a
    long reason and a multi-line value: the table shows each as a size and a
    digest prefix (or cut prose), one row per entry; --json keeps them whole."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from device.sealing import pki
    from device.sealing.messages import sign_message

    state = agency.enrol(tmp_path / "rec", "L000001")
    cert = pki.load_cert(state / "identity" / "device.crt")
    message = sign_message(Ed25519PrivateKey.generate(), cert, {"ctx": "bodycam/clock-sync", "offset_ns": "5"})
    reason = "the dock refused the message because " + "the signer's certificate is not trusted " * 6
    sealing = SealingState.open(state, ManualClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
    try:
        sealing.log_event("clock-set", {"offset_ns": "5", "dock": "dock-1", "sync": message})
        sealing.log_event("alarm", {"kind": "refused-message", "reason": reason, "note": "two\nlines",
                                    "token": "A" * 49, "short": "B" * 48})
    finally:
        sealing.close()

    result = run_log(agency, state)
    assert result.exit_code == 0, result.output + result.stderr
    rows = {line.split()[2]: line for line in result.stdout.splitlines()[2:]}
    assert len(result.stdout.splitlines()) == 2 + len(rows)  # no value spills onto a line of its own
    clock_set, alarm = rows["clock-set"], rows["alarm"]
    assert "BEGIN CERTIFICATE" not in clock_set and message["payload"] not in clock_set
    pem = message["certificate"].encode()
    assert f'"certificate":"<{len(pem)} bytes sha256:{hashlib.sha256(pem).hexdigest()[:12]}…>"' in clock_set
    signature = message["signature"].encode()
    assert f'"signature":"<{len(signature)} bytes sha256:{hashlib.sha256(signature).hexdigest()[:12]}…>"' \
        in clock_set
    assert "dock=dock-1" in clock_set and "offset_ns=5" in clock_set  # short values stay whole
    assert f"reason={reason[:120]}… <{len(reason)} bytes>" in alarm
    assert "note=<9 bytes sha256:" in alarm and "two" not in alarm
    assert f"token=<49 bytes sha256:{hashlib.sha256(b'A' * 49).hexdigest()[:12]}…>" in alarm
    assert f"short={'B' * 48}" in alarm

    _, doc = as_json(agency, state)
    data = {e["event"]: e["data"] for e in doc["entries"]}
    assert data["clock-set"]["sync"] == message
    assert data["alarm"]["reason"] == reason and data["alarm"]["note"] == "two\nlines"
