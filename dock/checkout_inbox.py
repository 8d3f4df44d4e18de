"""Check-out requests from the station console (Art. 8), format.md §15.1.

The console cannot reach the dock's registry of certified officers (the
dock is its own host, and the console reads only the dock's files), so it
leaves a request in ``STATE/checkout-requests/<bay>.json``; the dock
daemon applies it with :meth:`Registry.checkout` (which refuses an officer
who is not certified or whose certificate has expired), then removes it and
writes ``<bay>.result.json`` saying what happened, for the console to show.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

from bodycam.errors import BodycamError

from .registry import Registry

log = logging.getLogger(__name__)
INBOX = "checkout-requests"


def _write(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def apply_checkout_requests(state: Path, registry: Registry, bays: set[int] | None = None) -> list[dict]:
    """Apply every pending request in ``state``; returns the results written.

    A request that is not JSON, names no bay or officer, or names a bay this
    dock does not have, is answered with an error result too (never an exception).
    """
    inbox = Path(state) / INBOX
    if not inbox.is_dir():
        return []
    results = []
    for path in sorted(inbox.glob("*.json")):
        if path.name.endswith(".result.json") or not path.is_file():
            continue
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        stem = path.name[:-5]
        request = None
        try:
            request = json.loads(path.read_text(encoding="utf-8"))
            bay, officer = request["bay"], request["officer"]
            if not isinstance(bay, int) or not isinstance(officer, str) or str(bay) != stem:
                raise ValueError(f"{path.name}: bay must be the number in the file name and officer a string")
            if bays is not None and bay not in bays:
                raise ValueError(f"bay {bay} is not a bay of this dock")
            o = registry.checkout(bay, officer)
            result = {"bay": bay, "officer": officer, "outcome": "assigned", "name": o.name,
                      "certificate": o.certificate, "valid_until": o.valid_until,
                      "requested_by": request.get("requested_by"), "utc": now}
        except (ValueError, KeyError, TypeError, BodycamError, OSError) as exc:
            result = {"bay": stem, "officer": None, "outcome": "refused", "reason": str(exc), "utc": now}
            if isinstance(request, dict):
                result["officer"] = request.get("officer")
                result["requested_by"] = request.get("requested_by")
        _write(inbox / f"{stem}.result.json", result)
        path.unlink(missing_ok=True)
        log.info("check-out request for bay %s: %s", stem, result["outcome"])
        results.append(result)
    return results
