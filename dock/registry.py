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
    """The text of an officer CSV, whatever encoding a Chinese office saved it in.

    Raises ConfigError naming the file, line and field of the bad byte: the
    place where the encoding that decodes furthest stops (UTF-8 for a UTF-8
    file with one bad byte, GB18030 for a GBK file)."""
    if raw.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ENCODINGS
    last: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            if last is None or exc.start > last.start:
                last = exc
    assert last is not None
    line = raw[: last.start].count(b"\n") + 1
    # The field: the separators before the bad byte on its line (decoded as far as it decodes).
    before = raw[raw.rfind(b"\n", 0, last.start) + 1: last.start].decode(last.encoding, "replace")
    delimiter = "\t" if "\t" in before and "," not in before else ","
    index = field_at_fault(before, delimiter, len(before) + 1)
    raise ConfigError(f"{path}:{line}: field {column_name(index)}: not text in {' or '.join(encodings)} "
                      f"(byte 0x{raw[last.start]:02x} at offset {last.start}); save it as CSV UTF-8 or GBK")


def column_name(index: int) -> str:
    """The name of the field at ``index`` (from 0) of a row, or its number when past the columns."""
    return COLUMNS[index] if index < len(COLUMNS) else f"#{index + 1} (of {len(COLUMNS)})"


def read_officer_rows(path: Path):
    """(line number, 5 values) per data row; the header is checked.

    Raises ConfigError naming the file and line, and the field where one is at
    fault: a malformed quote or a field longer than Python csv's
    ``field_size_limit()`` (131072 characters by default) names the record's
    first line and its field, like every other error of the import."""
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ConfigError(f"{path}: {size} bytes; an officer CSV is at most {MAX_CSV_BYTES}")
    text = decode_officer_csv(path, path.read_bytes())
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1  # the first line of the record being read
    try:
        header = next(reader, None)
        if [h.strip() for h in header or []] != COLUMNS:
            raise ConfigError(f"{path}:1: header must be {','.join(COLUMNS)}, found {header}")
        start = reader.line_num + 1
        for row in reader:
            line = reader.line_num
            if not row or all(not v.strip() for v in row):
                start = reader.line_num + 1
                continue  # a blank line (Excel leaves some at the end)
            if len(row) != len(COLUMNS):
                raise ConfigError(f"{path}:{line}: {len(row)} fields, expected {len(COLUMNS)} "
                                  f"({','.join(COLUMNS)})")
            yield line, row
            start = reader.line_num + 1
    except csv.Error as exc:
        lines = io.StringIO(text, newline="").readlines()  # as the reader counts them
        index = field_at_fault("".join(lines[start - 1:]), delimiter, csv.field_size_limit())
        raise ConfigError(f"{path}:{start}: field {column_name(index)}: not valid CSV: {exc}") from None


def field_at_fault(record: str, delimiter: str, limit: int) -> int:
    """The index (from 0) of the field where Python's csv reader (strict, RFC 4180
    quoting) stops in ``record``, the text from a record's first line on: the
    first field longer than ``limit``, with a character other than a separator
    after its closing quote, or whose quote never closes.  For naming the field in
    an error only; the reading itself is the csv module's."""
    index, length, quoted, after_quote = 0, 0, False, False
    for char in record:
        if quoted:
            if char == '"':
                quoted, after_quote = False, True
            else:
                length += 1
        elif after_quote:
            if char == '"':  # a doubled quote inside quotes
                quoted, after_quote, length = True, False, length + 1
            elif char == delimiter:
                index, length, after_quote = index + 1, 0, False
            elif char in "\r\n":
                return index
            else:
                return index  # strict: a separator must follow the closing quote
        elif char == delimiter:
            index, length = index + 1, 0
        elif char in "\r\n":
            return index
        elif char == '"' and length == 0:
            quoted = True
        else:
            length += 1
        if length > limit:
            return index
    return index  # the data ended inside quotes


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
