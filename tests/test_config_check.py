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


def variant(tmp_path, old: str, new: str, base: str = "pi4-camera3-ina219.toml") -> Path:
    text = (REPO / "hw-configs" / base).read_text()
    assert old in text, old
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    return path


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
