"""hw-config validation: every shipped config passes; bad ones exit 2 naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bodycam.cli import main

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "hw-configs").glob("*.toml"))


def check(*paths):
    result = CliRunner().invoke(main, ["config", "check", *map(str, paths)])
    assert "Traceback" not in result.output
    return result


def test_every_shipped_config_passes():
    assert {p.name for p in SHIPPED} >= {"sim.toml", "pi4-camera3-ina219.toml",
                                        "pi5-camera3-max17048.toml", "zero2w-camera3-pisugar3.toml"}
    result = check(*SHIPPED)
    assert result.exit_code == 0, result.output
    assert result.output.count(": OK") == len(SHIPPED)


def refused(path: Path, *messages: str) -> None:
    """`config check` exits 2 naming the file and saying each of ``messages``."""
    result = check(path)
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and all(m in result.output for m in messages), result.output


def edited(source: Path, tmp_path, old: str, new: str, name: str) -> Path:
    """A copy of the config ``source`` named ``name`` in ``tmp_path`` with ``old`` replaced once."""
    text = source.read_text()
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def variant(tmp_path, old: str, new: str, base: str = "pi4-camera3-ina219.toml") -> Path:
    return edited(REPO / "hw-configs" / base, tmp_path, old, new, "bad.toml")


@pytest.mark.parametrize("old,new,message", [
    ("bitrate = 8_000_000", "bitrate = 8_000_000\ncolour = 'red'", "camera.colour: unknown key"),
    ("fps = 30", "fps = 240", "camera.fps: Input should be less than or equal to 60"),
    ("vibration = 25", "vibration = 5", "both use GPIO5"),
    ("buzzer = 12", "buzzer = 3", "reserved for I2C SCL"),
    ("buzzer = 12", "buzzer = 16", "voiceHAT amplifier's SD_MODE"),
    ('gauge = "ina219-ups-b"', 'gauge = "bq27441"', "power.gauge: Input should be"),
    ('pin_factory = "lgpio"', 'pin_factory = "mock"', "needs a real gpio.pin_factory"),
    ('kind = "ds3231"', 'kind = "pi5"', "exists only on board 'pi5'"),
    ("address = 0x42", "address = 0x99", "power.address: Input should be less than or equal to 119"),
    ('board = "pi4"', 'board = "pi3"', "board: Input should be"),
])
def test_bad_config_is_refused_naming_file_key_and_allowed(tmp_path, old, new, message):
    path = variant(tmp_path, old, new)
    result = check(path)
    assert result.exit_code == 2
    assert str(path) in result.output and message in result.output, result.output


def test_pi5_needs_lgpio_and_pisugar_clashes_with_ds3231(tmp_path):
    pi5 = variant(tmp_path, 'pin_factory = "lgpio"', 'pin_factory = "rpigpio"', "pi5-camera3-max17048.toml")
    assert "only gpio.pin_factory = 'lgpio'" in check(pi5).output
    zero = variant(tmp_path, 'kind = "pisugar3"', 'kind = "ds3231"', "zero2w-camera3-pisugar3.toml")
    assert "both answer at I2C 0x68" in check(zero).output


def test_not_toml_and_missing_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("board = [")
    assert check(path).exit_code == 2 and "not valid TOML" in check(path).output
    assert "not found" in check(tmp_path / "nope.toml").output


# -- "config check passes" implies "the program starts" -----------------------------------

DOCK_EXAMPLE = REPO / "dock" / "dock.example.toml"


@pytest.mark.parametrize("old,new,message", [
    ('timezone = "Asia/Shanghai"', 'timezone = "Asia/Beijing"', "unknown time zone 'Asia/Beijing'"),
    ('timezone = "Asia/Shanghai"', 'timezone = "../../etc/passwd"', "unknown time zone"),
    ('i2c_bus = "1"', 'i2c_bus = "not-a-bus"', "power.i2c_bus: String should match pattern"),
    ('i2c_bus = "1"', 'i2c_bus = "sim"', "only the sim board has it"),
    ('i2c_bus = "1"', "i2c_bus = 1", "power.i2c_bus: Input should be a valid string"),
    ("fps = 30", 'fps = "30"', "camera.fps: Input should be a valid integer"),
    ("fps = 30", "fps = 30.0", "camera.fps: Input should be a valid integer"),
    ("segment_seconds = 60", "segment_seconds = true", "recording.segment_seconds: Input should be a valid integer"),
    ("[recording]", '[docklink]\nlisten = "localhost"\n\n[recording]', "docklink.listen"),
    ("[recording]", '[docklink]\nlisten = "fe80::ff:fe00:1"\n\n[recording]', "needs its interface"),
    ("[recording]", "[docklink]\nenabled = 1\n\n[recording]", "docklink.enabled: Input should be a valid boolean"),
])
def test_values_the_program_would_fail_on_are_refused(tmp_path, old, new, message):
    refused(variant(tmp_path, old, new), message)


def test_deep_nesting_is_a_clear_error_not_a_crash(tmp_path):
    for text in ("x = " + "[" * 100_000 + "]" * 100_000, "x = " + "{a = " * 50_000 + "1" + "}" * 50_000):
        path = tmp_path / "deep.toml"
        path.write_text('board = "sim"\n' + text + "\n")
        result = check(path)
        assert result.exit_code == 2 and str(path) in result.output, result.output[-300:]


def test_a_fifo_or_a_folder_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "hw.toml"
    import os

    os.mkfifo(fifo)
    result = check(fifo)
    assert result.exit_code == 2 and f"{fifo}: config is a FIFO, not a regular file" in result.output


def test_the_example_dock_config_passes():
    result = check(DOCK_EXAMPLE, *SHIPPED)
    assert result.exit_code == 0, result.output
    assert f"{DOCK_EXAMPLE}: OK, dock config (2 bay(s)" in result.output


def dock_variant(tmp_path, old: str, new: str) -> Path:
    return edited(DOCK_EXAMPLE, tmp_path, old, new, "dock.toml")


@pytest.mark.parametrize("old,new,message", [
    ('serial_pattern = "^[A-Z0-9]{7}$"', 'serial_pattern = "^[A-Z0-9{7}$"', "match.serial_pattern"),
    ('serial_pattern = "^[A-Z0-9]{7}$"', 'serial_pattern = "(?P<x"', "is not a regular expression"),
    ("bay = 2", "bay = 1", "two bays have bay 1"),
    ('usb_path = "platform-xhci-hcd.0-usb-0:2:1.0"', 'usb_path = "platform-xhci-hcd.0-usb-0:1:1.0"',
     "two bays have usb_path"),
    ('address = "fe80::ff:fe00:1"', 'address = "fe80::ff:fe00:1%usb0"', "recorder.address"),
    ('address = "fe80::ff:fe00:1"', 'address = "recorder.local"', "is not an IP address"),
    ("shift_minutes = 600", 'shift_minutes = "600"', "readiness.shift_minutes: Input should be a valid integer"),
    ("timeout_seconds = 120", "timeout_seconds = 2", "archive.timeout_seconds: Input should be greater than or equal to 5"),
    ("timeout_seconds = 120", "timeout_seconds = 7200", "archive.timeout_seconds: Input should be less than or equal to 3600"),
    ('url = "https://archive.example.internal:8444"', 'url = "http://archive.example.internal:8444"', "archive.url"),
    ('url = "https://archive.example.internal:8444"', 'url = "https://archive.example.internal:8444"\nbucket = "x"',
     "archive.bucket: unknown key"),
    # the round-1 in-process archive table: the dock now holds no archive key
    ('url = "https://archive.example.internal:8444"', 'kind = "local"\nreceipt_key = "/etc/bodycam/archive/receipt.key"',
     "archive.url: required key is missing"),
])
def test_bad_dock_configs_are_refused(tmp_path, old, new, message):
    refused(dock_variant(tmp_path, old, new), message)


def test_neither_kind_of_config(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\n')
    result = check(path)
    assert result.exit_code == 2 and "neither a hw-config" in result.output


def test_a_refused_config_writes_nothing_to_the_state(agency, tmp_path):
    """`record` with a config that fails the check stops before it opens the state (no boot entry)."""
    state = agency.enrol(tmp_path / "rec", "C000001")
    before = sorted(p.name for p in (state / "seallog").iterdir()) if (state / "seallog").exists() else []
    path = variant(tmp_path, 'timezone = "Asia/Shanghai"', 'timezone = "Asia/Beijing"', "sim.toml")
    result = CliRunner().invoke(main, ["record", "--config", str(path), "--state", str(state), "--seconds", "1"])
    assert result.exit_code == 2 and "Asia/Beijing" in result.output and "Traceback" not in result.output
    after = sorted(p.name for p in (state / "seallog").iterdir()) if (state / "seallog").exists() else []
    assert after == before


# -- the archive config: the same error text as the other two (device/sealing/configfile.py) --

ARCHIVE_EXAMPLE = REPO / "archive" / "example.toml"
S3_STORE = ('[store]\nbackend = "s3"\nbucket = "evidence"\naccess_key_id = "AKIA"\n'
            'secret_access_key = "{secret}"\n')


def archive_variant(tmp_path, old: str, new: str) -> Path:
    return edited(ARCHIVE_EXAMPLE, tmp_path, old, new, "archive.toml")


@pytest.mark.parametrize("old,new,message", [
    ("port = 8444", 'port = "http"', "server.port: Input should be a valid integer, unable to parse string as "
     "an integer (found 'http')"),
    ("port = 8444", "port = 70000", "server.port: Input should be less than or equal to 65535 (found 70000)"),
    ("patrol_days = 183", "patrol_days = 30", "retention.patrol_days: Input should be greater than or equal to "
     "183 (found 30)"),
    ("duty_hours = 12", "duty_hours = [12]", "watch.duty_hours: Input should be a valid number (found an array of 1)"),
    ('url = "sqlite:///index.sqlite"', 'url = "mysql://archive:hunter2@db/archive"',
     "index.url: String should match pattern"),
    ('id = "shuncheng-market"', 'id = "顺城"', "agencies.0.id: String should match pattern"),
    ('backend = "local"', 'backend = "local"\ncolour = "blue"', "store.colour: unknown key"),
])
def test_archive_config_errors_show_the_value_found(tmp_path, old, new, message):
    path = archive_variant(tmp_path, old, new)
    refused(path, f"{path}: invalid archive config\n", message)


def test_config_errors_hide_secrets_and_whole_tables(tmp_path):
    """A URL's password is masked, a secret key's value never shown, and a check over a whole
    table (two agencies with one id, two bays with one number) shows no table."""
    path = archive_variant(tmp_path, 'url = "sqlite:///index.sqlite"', 'url = "mysql://archive:hunter2@db/archive"')
    output = check(path).output
    assert "found 'mysql://archive:***@db/archive'" in output and "hunter2" not in output, output
    text = ARCHIVE_EXAMPLE.read_text()
    store = text[text.index("[store]"):text.index("[index]")]
    path.write_text(text.replace(store, S3_STORE.format(secret="x") + "part_size_mb = 1\n\n")
                    .replace('secret_access_key = "x"', "secret_access_key = 12345678"))
    output = check(path).output
    assert ("store.secret_access_key: Input should be a valid string (found a value of type int, not shown)"
            in output), output
    assert "store.part_size_mb: Input should be greater than or equal to 5 (found 1)" in output
    assert "12345678" not in output
    agency = text[text.index("[[agencies]]"):]
    path.write_text(text + "\n" + agency)
    output = check(path).output
    assert "(top level): Value error, agency ids must be unique: ['shuncheng-market', 'shuncheng-market']\n" \
        in output, output
    assert "顺城区市场监督管理局" not in output
    dock = dock_variant(tmp_path, "bay = 2", "bay = 1")
    output = check(dock).output
    assert "two bays have bay 1\n" in output and "usb_path" not in output, output


def test_an_archive_config_fifo_or_folder_is_refused_without_waiting(tmp_path):
    import os

    fifo = tmp_path / "archive.toml"
    os.mkfifo(fifo)
    from archive.config import load_archive_config
    from bodycam.errors import InputError

    with pytest.raises(InputError, match="archive config is a FIFO, not a regular file"):
        load_archive_config(fifo)
    with pytest.raises(InputError, match="archive config is a folder, not a regular file"):
        load_archive_config(tmp_path)
