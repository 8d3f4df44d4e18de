"""`bodycam dock import-officers` with the files Chinese offices hand over:
Excel's encodings read correctly; every bad file exit 2 naming file, line and field."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bodycam.cli import main
from dock.registry import Registry

CASES = Path(__file__).resolve().parent / "cases"
HEADER = "officer_id,name,department,certificate_no,valid_until"
VALID = (dt.date.today() + dt.timedelta(days=365)).isoformat()
ROWS = [f"010203,张伟,市场监督管理局,LN210123,{VALID}", f"020304,李娜,市场监督管理局,LN210456,{VALID}",
        f"030405,欧阳𠮷,顺城区综合行政执法局,LN210789,{VALID}"]  # 𠮷 is outside GBK, inside GB18030


@pytest.fixture
def dock(tmp_path):
    config = tmp_path / "dock.toml"
    config.write_text(f"""
key = "{tmp_path}/dock.key"
certificate = "{tmp_path}/dock.crt"
ca = "{tmp_path}/ca.crt"
state = "{tmp_path}/state"
[archive]
url = "https://archive.example.internal:8444"
""")

    def run(csv_path: Path):
        return CliRunner().invoke(main, ["dock", "--config", str(config), "import-officers", str(csv_path)])

    run.registry = lambda: Registry(tmp_path / "state" / "registry.sqlite")
    return run


def test_the_handed_over_gbk_file_is_read_correctly(dock):
    result = dock(CASES / "officers-gbk.csv")
    assert result.exit_code == 0, result.output
    assert dock.registry().officer("010203").name == "张伟"
    assert dock.registry().officer("020304").department == "市场监督管理局"


@pytest.mark.parametrize("encoding, newline, delimiter", [
    ("utf-8", "\n", ","), ("utf-8-sig", "\r\n", ","), ("gb18030", "\r\n", ","),
    ("utf-16", "\r\n", "\t"),  # Excel's "Unicode text": UTF-16 with a BOM, tab-separated
])
def test_excel_encodings_are_read_correctly(dock, tmp_path, encoding, newline, delimiter):
    path = tmp_path / "officers.csv"
    text = newline.join(line.replace(",", delimiter) for line in [HEADER, *ROWS]) + newline
    path.write_bytes(text.encode(encoding))
    result = dock(path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("3 officers imported")
    officer = dock.registry().officer("030405")
    assert officer.name == "欧阳𠮷" and officer.department == "顺城区综合行政执法局"


def bad_files():
    long = "张" * 200_000
    return {
        "duplicate": ([HEADER, ROWS[0], ROWS[1], ROWS[0].replace("张伟", "王芳")],
                      ":4: field officer_id 010203 is a duplicate of line 2"),
        "short row": ([HEADER, ROWS[0], "020304,李娜,市场监督管理局"], ":3: 3 fields, expected 5"),
        "long row": ([HEADER, ROWS[0] + ",extra"], ":2: 6 fields, expected 5"),
        # a field longer than Python csv's field_size_limit (131072): named like any other error
        "huge field": ([HEADER, f"010203,{long},市场监督管理局,LN1,{VALID}"],
                       ":2: field name: not valid CSV: field larger than field limit (131072)"),
        "huge last field": ([HEADER, ROWS[0], f"020304,李娜,市场监督管理局,LN1,{long}"],
                            ":3: field valid_until: not valid CSV: field larger than field limit"),
        "huge quoted field over lines": ([HEADER, ROWS[0], f'020304,李娜,"市场\n监督,{long}",LN1,{VALID}'],
                                         ":3: field department: not valid CSV: field larger than field limit"),
        "huge extra field": ([HEADER, f"010203,张伟,市场监督管理局,LN1,{VALID},{long}"],
                             ":2: field #6 (of 5): not valid CSV: field larger than field limit"),
        "text after a closing quote": ([HEADER, ROWS[0], f'020304,"李, ""娜""",市场监督管理局,"LN1"2,{VALID}'],
                                       ":3: field certificate_no: not valid CSV: ',' expected after '\"'"),
        "impossible date": ([HEADER, "010203,张伟,市场监督管理局,LN210123,2030-99-99"],
                            ":2: field valid_until '2030-99-99' is not a date"),
        "31 February": ([HEADER, "010203,张伟,市场监督管理局,LN210123,2031-02-31"], ":2: field valid_until"),
        "not a date": ([HEADER, "010203,张伟,市场监督管理局,LN210123,next year"], ":2: field valid_until"),
        "empty name": ([HEADER, f"010203,,市场监督管理局,LN210123,{VALID}"], ":2: field name is empty"),
        "bad id": ([HEADER, f"01 02,张伟,市场监督管理局,LN210123,{VALID}"], ":2: field officer_id"),
        "wrong header": (["id,name", "1,2"], ":1: header must be"),
        "nul byte": ([HEADER, f"010203,张\0伟,市场监督管理局,LN210123,{VALID}"], ":2: "),
        "unclosed quote": ([HEADER, f'010203,"张伟,市场监督管理局,LN210123,{VALID}'],
                           ":2: field name: not valid CSV"),
    }


@pytest.mark.parametrize("case", bad_files())
def test_bad_files_exit_2_naming_file_line_and_field(dock, tmp_path, case):
    lines, expected = bad_files()[case]
    before = dock(CASES / "officers-gbk.csv")
    assert before.exit_code == 0
    path = tmp_path / "officers.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = dock(path)
    assert result.exit_code == 2, (case, result.output, result.exception)
    assert f"{path}{expected}" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output) < 500
    assert dock.registry().officer("010203").name == "张伟"  # the registry is unchanged


def test_the_handed_over_duplicate_file(dock):
    result = dock(CASES / "officers-duplicate-id.csv")
    assert result.exit_code == 2
    assert "officers-duplicate-id.csv:4: field officer_id 010203 is a duplicate of line 2" in result.output


def test_undecodable_bytes_and_a_fifo(dock, tmp_path):
    path = tmp_path / "officers.csv"
    path.write_bytes((HEADER + "\n").encode() + b"010203,\x80\xff\x80,X,LN1," + VALID.encode() + b"\n")
    result = dock(path)
    assert result.exit_code == 2 and f"{path}:2: field name: not text in utf-8 or gb18030" in result.output
    path.write_bytes((HEADER + "\n" + ROWS[0] + "\n").encode() + b'020304,"Li, Na",X,LN1\x80\xff\x80,'
                     + VALID.encode() + b"\n")
    result = dock(path)
    assert result.exit_code == 2 and f"{path}:3: field certificate_no: not text in" in result.output
    fifo = tmp_path / "officers.fifo"
    os.mkfifo(fifo)
    result = dock(fifo)  # never opened for reading: that would wait forever
    assert result.exit_code == 2 and f"{fifo}: not a regular file" in result.output
