"""The dock's own records: certified officers (Art. 8), check-outs per bay,
and the seal-log head last seen from each recorder (to notice a rollback)."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import logging
import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from bodycam.errors import ConfigError, UsageError
from device.sealing.pki import OFFICER_ID_RE

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS officers (
    officer TEXT PRIMARY KEY, name TEXT NOT NULL, department TEXT NOT NULL,
    certificate TEXT NOT NULL, valid_until TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkouts (bay INTEGER PRIMARY KEY, officer TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS heads (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, digest TEXT NOT NULL);
"""
COLUMNS = ["officer_id", "name", "department", "certificate_no", "valid_until"]
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Longest value per column (characters): generous for Chinese names and unit names.
FIELD_LIMITS = {"officer_id": 12, "name": 64, "department": 128, "certificate_no": 64, "valid_until": 10}
MAX_CSV_BYTES = 16 * 1024 * 1024  # tens of thousands of officers; anything larger is not a roster
# Encodings tried in order when the file has no BOM: UTF-8 first (it rarely
# decodes by accident), then GB18030, the superset of GBK that Chinese-locale
# Excel writes ("CSV (逗号分隔)").
ENCODINGS = ("utf-8", "gb18030")


def decode_officer_csv(path: Path, raw: bytes) -> str:
    """The text of an officer CSV, whatever encoding a Chinese office saved it in."""
    if raw.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ENCODINGS
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            last = exc
    line = raw[: last.start].count(b"\n") + 1
    raise ConfigError(f"{path}:{line}: not text in {' or '.join(encodings)} "
                      f"(byte 0x{raw[last.start]:02x} at offset {last.start}); save it as CSV UTF-8 or GBK")


def read_officer_rows(path: Path):
    """(line number, 5 values) per data row; the header is checked; errors name file and line."""
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ConfigError(f"{path}: {size} bytes; an officer CSV is at most {MAX_CSV_BYTES}")
    text = decode_officer_csv(path, path.read_bytes())
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if [h.strip() for h in header or []] != COLUMNS:
            raise ConfigError(f"{path}:1: header must be {','.join(COLUMNS)}, found {header}")
        for row in reader:
            line = reader.line_num
            if not row or all(not v.strip() for v in row):
                continue  # a blank line (Excel leaves some at the end)
            if len(row) != len(COLUMNS):
                raise ConfigError(f"{path}:{line}: {len(row)} fields, expected {len(COLUMNS)} "
                                  f"({','.join(COLUMNS)})")
            yield line, row
    except csv.Error as exc:
        raise ConfigError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


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
        """Replace the registry with a CSV: officer_id,name,department,certificate_no,valid_until.

        Read as Excel saves it in a Chinese office: UTF-8 (with or without a
        BOM), GBK/GB18030, or UTF-16 "Unicode text" (tab-separated).  Any
        problem raises ``ConfigError`` naming the file, the line and the field
        (the command exits 2), and the registry is left as it was.
        """
        rows = []
        seen: dict[str, int] = {}
        for line, row in read_officer_rows(Path(path)):
            where = f"{path}:{line}"
            values = dict(zip(COLUMNS, (v.strip() for v in row)))
            for column, limit in FIELD_LIMITS.items():
                bad = next((c for c in values[column] if unicodedata.category(c) in ("Cc", "Cs")), None)
                if bad is not None:
                    raise ConfigError(f"{where}: field {column} contains the control character U+{ord(bad):04X}")
                if len(values[column]) > limit:
                    raise ConfigError(f"{where}: field {column} is {len(values[column])} characters "
                                      f"long, at most {limit} allowed")
            oid, vu = values["officer_id"], values["valid_until"]
            if not OFFICER_ID_RE.match(oid):
                raise ConfigError(f"{where}: field officer_id {oid!r} is not 6-12 characters A-Z/0-9")
            if oid in seen:
                raise ConfigError(f"{where}: field officer_id {oid} is a duplicate of line {seen[oid]}")
            seen[oid] = line
            if not DATE_RE.match(vu):
                raise ConfigError(f"{where}: field valid_until {vu!r} is not YYYY-MM-DD")
            try:
                dt.date.fromisoformat(vu)
            except ValueError as exc:
                raise ConfigError(f"{where}: field valid_until {vu!r} is not a date ({exc})") from None
            for column in ("name", "certificate_no"):
                if not values[column]:
                    raise ConfigError(f"{where}: field {column} is empty; it is required")
            rows.append((oid, values["name"], values["department"], values["certificate_no"], vu))
        with self.db:
            self.db.execute("DELETE FROM officers")
            self.db.executemany("INSERT INTO officers VALUES (?, ?, ?, ?, ?)", rows)
        log.info("%s: %d officers imported", path, len(rows))
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
