"""``bodycam config check``: every kind of bodycam config, told apart by its keys.

The recorder's hw-configs (``board = …``) and the dock's config (``key``,
``certificate``, ``ca``, ``state``, ``[archive]``) are checked by their own
loaders; the package's post-install step runs this on /etc/bodycam/*.toml.
Lives in ``bodycam/`` because only the entry point may import both the
recorder and the dock.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Callable

import click

from bodycam.errors import ConfigError, InputError


def _check_hw(path: Path) -> str:
    from device.config import load_hw_config

    config = load_hw_config(path)
    return (f"{path}: OK ({config.board}, camera {config.camera.backend}, gauge {config.power.gauge}, "
            f"rtc {config.rtc.kind})")


def _check_dock(path: Path) -> str:
    from dock.config import load_dock_config

    config = load_dock_config(path)
    return f"{path}: OK (dock, {len(config.bays)} bays, archive {config.archive.kind} at {config.archive.path})"


#: (what tells the kind apart, its name, its checker).  The archive service's
#: config joins here when `bodycam archive serve` lands.
KINDS: list[tuple[Callable[[dict], bool], str, Callable[[Path], str]]] = [
    (lambda d: "board" in d, "hw-config", _check_hw),
    (lambda d: "archive" in d and "certificate" in d, "dock config", _check_dock),
]


def check_file(path: Path) -> str:
    """The OK line for a valid config.  Raises ConfigError / InputError naming
    the file (and the key) otherwise."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: config not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a directory, not a config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for matches, _, check in KINDS:
        if matches(data):
            return check(path)
    raise ConfigError(f"{path}: not a bodycam config: expected a hw-config (board = …) or a dock config "
                      f"(key, certificate, ca, state and [archive])")


@click.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def config_check(files: tuple[Path, ...]) -> None:
    """Validate configs: recorder hw-configs and the dock's config.

    hw-configs: unknown keys, ranges, pin conflicts, unknown devices.  Dock
    config: unknown keys and ranges.  Exit status 0 when all are valid, 2
    otherwise; errors name the file, the key and what is allowed.
    """
    bad = 0
    for path in files:
        try:
            click.echo(check_file(path))
        except (ConfigError, InputError) as exc:
            click.echo(str(exc), err=True)
            bad += 1
    raise SystemExit(2 if bad else 0)
