"""The self-test report a technician keeps with the unit's record
(docs/format.md §16), and the summary the dock reads for readiness.

``bodycam selftest --out FILE`` writes it; with ``--state DIR`` the last
report is also kept as ``DIR/selftest.json``, where the running recorder
finds it and hands :func:`last_selftest` to the dock over ``/v1/health``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from bodycam import __version__
from bodycam.errors import BodycamError, FormatError, InputError

from .sealing.fsutil import fsync_dir
from .sealing.sealer import DeviceIdentity

FORMAT = "bodycam-selftest/2"
LAST_REPORT = "selftest.json"  # in the recorder's state directory
MAX_REPORT = 256 * 1024
RESULTS = ("PASS", "FAIL", "WARN", "SKIP")


def config_sha256(path: Path) -> str:
    """Hex SHA-256 of the config file's bytes, as read (so a copy elsewhere matches)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def device_id_of(state_dir: Path | None) -> str | None:
    """The enrolled device ID in ``state_dir``, or None (no state, not enrolled,
    or a bad identity: the "device key" check reports why)."""
    if state_dir is None:
        return None
    try:
        return DeviceIdentity.load(Path(state_dir)).device_id
    except (BodycamError, OSError, ValueError):
        return None


def build_report(*, passed: bool, unattended: bool, checks: list[dict[str, str]], config_path: Path,
                 device_id: str | None, now: dt.datetime) -> dict[str, Any]:
    """The report as a JSON-ready dict (format ``bodycam-selftest/2``).

    ``now`` must be timezone-aware; it is written in UTC with a ``Z``.
    ``device_id`` is None when no state directory was given (not enrolled here).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return {
        "format": FORMAT,
        "device_id": device_id,
        "time_utc": now.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "software": f"bodycam {__version__}",
        "config": {"name": Path(config_path).name, "sha256": config_sha256(config_path)},
        "passed": passed,
        "unattended": unattended,
        "checks": checks,
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write ``report`` to ``path`` durably: a temporary file in the same folder,
    fsync, atomic rename over the old report, fsync of the folder.  A crash
    leaves the old report or the new one, never half of one.

    Raises InputError (naming ``path``) when its folder is missing or not writable.
    """
    path = Path(path)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the self-test report: {exc.strerror or exc}") from None
    try:
        view = memoryview(text.encode())
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_report(path: Path) -> dict[str, Any]:
    """Read and check a report written by :func:`write_report`.

    Raises InputError when it cannot be read, FormatError (naming the file and
    the field) when it is not a ``bodycam-selftest/2`` report.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_REPORT + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the self-test report: {exc.strerror or exc}") from None
    if len(raw) > MAX_REPORT:
        raise FormatError(f"larger than {MAX_REPORT} bytes: not a self-test report", str(path))
    try:
        report = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"not JSON: {exc}", str(path)) from None
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        found = report.get("format") if isinstance(report, dict) else type(report).__name__
        raise FormatError(f"format is {found!r}, expected {FORMAT!r}", str(path))
    for key, kind in (("time_utc", str), ("software", str), ("passed", bool), ("checks", list), ("config", dict)):
        if not isinstance(report.get(key), kind):
            raise FormatError(f"{key!r} missing or not a {kind.__name__}", str(path))
    for i, check in enumerate(report["checks"]):
        if not (isinstance(check, dict) and isinstance(check.get("name"), str)
                and check.get("result") in RESULTS and isinstance(check.get("detail"), str)):
            raise FormatError(f"checks[{i}] is not {{name, result: {'|'.join(RESULTS)}, detail}}", str(path))
    try:
        dt.datetime.fromisoformat(report["time_utc"].replace("Z", "+00:00"))
    except ValueError:
        raise FormatError(f"time_utc {report['time_utc']!r} is not an ISO 8601 time", str(path)) from None
    return report


def last_selftest(state_dir: Path) -> dict[str, Any]:
    """What the dock needs for readiness: the last report kept in ``state_dir``.

    ``{"present": False}`` when there is none; ``{"present": True, "valid":
    False, "error": …}`` when it is unreadable or malformed; otherwise
    ``{"present": True, "valid": True, "passed", "time_utc", "software",
    "config", "failed": [names of FAIL checks]}``.  Never raises for a bad file.
    """
    path = Path(state_dir) / LAST_REPORT
    if not path.exists():
        return {"present": False}
    try:
        report = read_report(path)
    except (InputError, FormatError) as exc:
        return {"present": True, "valid": False, "error": str(exc)}
    return {"present": True, "valid": True, "passed": report["passed"], "time_utc": report["time_utc"],
            "software": report["software"], "config": report["config"],
            "failed": [c["name"] for c in report["checks"] if c["result"] == "FAIL"]}


__all__ = ["FORMAT", "LAST_REPORT", "build_report", "write_report", "read_report", "last_selftest",
           "config_sha256", "device_id_of"]
