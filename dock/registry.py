"""The dock's own records: certified officers (Art. 8), check-outs per bay,
and the seal-log head last seen from each recorder (to notice a rollback)."""

from __future__ import annotations

import csv
import datetime as dt
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bodycam.errors import ConfigError, UsageError
from device.sealing.pki import OFFICER_ID_RE

SCHEMA = """
CREATE TABLE IF NOT EXISTS officers (
    officer TEXT PRIMARY KEY, name TEXT NOT NULL, department TEXT NOT NULL,
    certificate TEXT NOT NULL, valid_until TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkouts (bay INTEGER PRIMARY KEY, officer TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS heads (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, digest TEXT NOT NULL);
"""
COLUMNS = ["officer_id", "name", "department", "certificate_no", "valid_until"]
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Officer:
    officer: str
    name: str
    department: str
    certificate: str
    valid_until: str


class Registry:
    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def import_csv(self, path: Path) -> int:
        """Replace the registry with a CSV: officer_id,name,department,certificate_no,valid_until."""
        rows = []
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != COLUMNS:
                raise ConfigError(f"{path}: header must be {','.join(COLUMNS)}, found {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                oid, vu = row["officer_id"].strip(), row["valid_until"].strip()
                if not OFFICER_ID_RE.match(oid):
                    raise ConfigError(f"{path}:{line}: officer_id {oid!r} is not 6-12 characters A-Z/0-9")
                if not DATE_RE.match(vu):
                    raise ConfigError(f"{path}:{line}: valid_until {vu!r} is not YYYY-MM-DD")
                if not row["certificate_no"].strip() or not row["name"].strip():
                    raise ConfigError(f"{path}:{line}: name and certificate_no are required")
                rows.append((oid, row["name"].strip(), row["department"].strip(),
                             row["certificate_no"].strip(), vu))
        with self.db:
            self.db.execute("DELETE FROM officers")
            self.db.executemany("INSERT INTO officers VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def officer(self, officer_id: str) -> Officer | None:
        row = self.db.execute("SELECT * FROM officers WHERE officer=?", (officer_id,)).fetchone()
        return Officer(*row) if row else None

    def checkout(self, bay: int, officer_id: str, today: dt.date | None = None) -> Officer:
        """Assign the recorder in ``bay`` to a certified, unexpired officer (Art. 8)."""
        officer = self.officer(officer_id)
        if officer is None:
            raise UsageError(f"officer {officer_id!r} is not in the registry of certified officers")
        today = today or dt.date.today()
        if officer.valid_until < today.isoformat():
            raise UsageError(f"officer {officer_id}'s enforcement certificate {officer.certificate} "
                             f"expired on {officer.valid_until}")
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO checkouts VALUES (?, ?, ?)",
                            (bay, officer_id, dt.datetime.now(dt.timezone.utc).isoformat()))
        return officer

    def pending(self, bay: int) -> Officer | None:
        row = self.db.execute("SELECT officer FROM checkouts WHERE bay=?", (bay,)).fetchone()
        return self.officer(row[0]) if row else None

    def clear_checkout(self, bay: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM checkouts WHERE bay=?", (bay,))

    def head(self, device: str) -> tuple[int, str] | None:
        row = self.db.execute("SELECT seq, digest FROM heads WHERE device=?", (device,)).fetchone()
        return (row[0], row[1]) if row else None

    def set_head(self, device: str, seq: int, digest: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)", (device, seq, digest))
