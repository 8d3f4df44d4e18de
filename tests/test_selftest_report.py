"""The self-test report: what it records, --out, the copy in the state, and the
dock's readiness from it (device/selftest_report.py, docs/format.md §16)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bodycam import __version__
from bodycam.cli import main
from bodycam.errors import FormatError, InputError
from device.selftest_report import FORMAT, LAST_REPORT, build_report, last_selftest, read_report, write_report

from .dockrig import make_rig

REPO = Path(__file__).resolve().parent.parent


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_selftest_out_keeps_the_whole_report(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "S000013")
    config = tmp_path / "unit-7.toml"
    config.write_bytes((REPO / "hw-configs/sim.toml").read_bytes() + b"\n# unit 7\n")
    out = tmp_path / "records" / "S000013-selftest.json"
    out.parent.mkdir()
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    result = CliRunner().invoke(main, ["selftest", "--config", str(config), "--state", str(state),
                                       "--unattended", "--out", str(out)])
    after = dt.datetime.now(dt.timezone.utc)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["format"] == FORMAT and report["device_id"] == "S000013"
    assert before <= _utc(report["time_utc"]) <= after and report["time_utc"].endswith("Z")
    assert report["software"] == f"bodycam {__version__}"
    assert report["config"] == {"name": "unit-7.toml", "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    assert report["passed"] is True and report["unattended"] is True
    names = {c["name"]: c["result"] for c in report["checks"]}
    assert names["device key"] == "PASS" and names["camera"] == "PASS" and names["storage speed"] == "PASS"
    # the printed table starts with the same identification
    first = result.output.splitlines()[0]
    assert first.startswith("device S000013, " + report["time_utc"]) and report["config"]["sha256"] in first
    # the state keeps the same report for the dock; no temporary files left behind
    assert json.loads((state / LAST_REPORT).read_text()) == report
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    assert read_report(out) == report


def test_selftest_json_without_state_says_not_enrolled(tmp_path):
    result = CliRunner().invoke(main, ["selftest", "--config", str(REPO / "hw-configs/sim.toml"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["device_id"] is None and report["config"]["name"] == "sim.toml"
    assert {c["name"]: c["result"] for c in report["checks"]}["device key"] == "SKIP"


def test_out_into_a_missing_folder_is_a_clear_error(tmp_path):
    out = tmp_path / "no-such-folder" / "r.json"
    result = CliRunner().invoke(main, ["selftest", "--config", str(REPO / "hw-configs/sim.toml"),
                                       "--unattended", "--out", str(out)])
    assert result.exit_code == 2 and f"{out}: cannot write the self-test report" in result.output
    assert "Traceback" not in result.output


def _report(tmp_path: Path, *results: str, when: dt.datetime | None = None) -> dict:
    config = tmp_path / "sim.toml"
    config.write_bytes((REPO / "hw-configs/sim.toml").read_bytes())
    checks = [{"name": f"check{i}", "result": r, "detail": "x"} for i, r in enumerate(results)]
    return build_report(passed="FAIL" not in results, unattended=True, checks=checks, config_path=config,
                        device_id="D000001", now=when or dt.datetime.now(dt.timezone.utc))


def test_write_replaces_the_old_report_atomically(tmp_path):
    path = tmp_path / "r.json"
    write_report(_report(tmp_path, "PASS"), path)
    write_report(_report(tmp_path, "PASS", "FAIL"), path)
    assert read_report(path)["passed"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "sim.toml"]
    with pytest.raises(ValueError, match="timezone-aware"):
        _report(tmp_path, "PASS", when=dt.datetime.now())


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t[: len(t) // 2], "not JSON"),
    (lambda t: t.replace(FORMAT, "bodycam-selftest/1"), "expected 'bodycam-selftest/2'"),
    (lambda t: "[1, 2]", "format is 'list'"),
    (lambda t: t.replace('"PASS"', '"MAYBE"', 1), "checks[0] is not"),
    (lambda t: t.replace('"passed": true', '"passed": "yes"'), "'passed' missing or not a bool"),
    (lambda t: json.dumps({**json.loads(t), "time_utc": "yesterday"}), "time_utc 'yesterday'"),
    (lambda t: t + " " * 300_000, "larger than"),
])
def test_bad_reports_are_refused_naming_the_file(tmp_path, mutate, message):
    path = tmp_path / "r.json"
    write_report(_report(tmp_path, "PASS", "SKIP"), path)
    path.write_text(mutate(path.read_text()))
    with pytest.raises(FormatError, match="r.json") as info:
        read_report(path)
    assert message in str(info.value)
    path.rename(tmp_path / LAST_REPORT)  # the same bad file where the dock's reader looks
    summary = last_selftest(tmp_path)
    assert summary["present"] and not summary["valid"] and message in summary["error"]


def test_last_selftest_summaries(tmp_path):
    assert last_selftest(tmp_path) == {"present": False}
    write_report(_report(tmp_path, "PASS", "FAIL", "WARN", "FAIL"), tmp_path / LAST_REPORT)
    summary = last_selftest(tmp_path)
    assert summary["valid"] and summary["passed"] is False and summary["failed"] == ["check1", "check3"]
    with pytest.raises(InputError, match="cannot read"):
        read_report(tmp_path / "absent.json")


@pytest.fixture
def rig(agency, tmp_path):
    rig = make_rig(agency, tmp_path)
    yield rig
    rig.close()


def test_the_dock_reads_the_last_selftest_for_readiness(rig, tmp_path):
    rig.record(1)
    progress = rig.dock()
    assert progress.outcome == "done" and progress.ready is True, progress.readiness  # no report: no reason

    write_report(_report(tmp_path, "PASS", "FAIL"), rig.state / LAST_REPORT)
    progress = rig.dock()
    assert progress.ready is False
    assert any("last self-test" in r and "failed: check1" in r for r in progress.readiness), progress.readiness

    (rig.state / LAST_REPORT).write_text("{not json")
    progress = rig.dock()
    assert progress.ready is False and any("unreadable" in r for r in progress.readiness), progress.readiness

    write_report(_report(tmp_path, "PASS", "SKIP", "WARN"), rig.state / LAST_REPORT)
    progress = rig.dock()
    assert progress.ready is True, progress.readiness
