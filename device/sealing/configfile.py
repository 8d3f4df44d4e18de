"""Reading a TOML configuration file and naming what is wrong with it, for all three
kinds: the recorder's hw-config (device/config.py), the dock config (dock/config.py) and
the archive config (archive/config.py).

It lives in the format package only because that is the one package the recorder, the dock
and the archive may all import (DESIGN.md, "Import rules"); nothing of the format uses it.
Errors are ``InputError`` (the file cannot be read) or ``ConfigError`` (it is not a valid
config), each naming the file, and for a bad value the key and the value found.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable

from bodycam.errors import ConfigError, InputError

from .safeio import open_regular

MAX_CONFIG_BYTES = 256 * 1024
"""Largest config file read (bytes): the longest shipped config is a few KiB."""
SHOWN_VALUE = 80
"""Characters of a bad value's repr shown in an error; the rest is cut."""
URL_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def read_toml(path: Path, what: str, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """The TOML of the config file at ``path`` (``what``: e.g. "hw-config"), at most ``limit``
    bytes of UTF-8.  A FIFO or a folder is refused without being read.  Raises InputError
    (missing, not a regular file, unreadable) or ConfigError (too large, not UTF-8, not
    TOML, nested too deeply), each naming the file."""
    path = Path(path)
    fd = open_regular(path, what)  # InputError: not found, a FIFO, a folder, no permission
    try:
        with open(fd, "rb", closefd=False) as stream:
            raw = stream.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise ConfigError(f"{path}: more than {limit} bytes; a {what} is at most {limit}")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a {what}: arrays or tables nested too deeply") from None


def shown_value(value: Any, secret: bool = False) -> str:
    """A bad value as an error shows it: its repr cut at SHOWN_VALUE characters, a URL's
    password masked; a table or an array by its kind and size; a ``secret`` only by its type."""
    if secret:
        return f"a value of type {type(value).__name__}, not shown"
    if isinstance(value, dict):
        return f"a table of {len(value)} key(s)"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)}"
    text = repr(value)
    if isinstance(value, str):
        text = URL_PASSWORD_RE.sub(r"\1***@", text)
    return text if len(text) <= SHOWN_VALUE else text[:SHOWN_VALUE] + "…"


def validation_error_text(path: Path, what: str, errors: Iterable[dict[str, Any]], *,
                          hidden_locations: frozenset[str] = frozenset(),
                          secrets: frozenset[str] = frozenset()) -> str:
    """The message of a config that fails its model: ``{path}: invalid {what}`` and one line
    per error, ``  key.sub: what is wrong (found VALUE)``.

    ``errors`` is pydantic's ``ValidationError.errors()``.  A check over a whole table (a
    model validator) shows no value: its message names the values concerned.  ``hidden_locations``: parts of
    a location that are not keys (a tagged union's tag, e.g. "local"); ``secrets``: dotted
    keys whose values are never shown (a password)."""
    lines = [f"{path}: invalid {what}"]
    for err in errors:
        key = ".".join(str(p) for p in err["loc"] if str(p) not in hidden_locations) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif err["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        elif isinstance(err.get("input"), dict) and err["type"] in ("value_error", "assertion_error"):
            lines.append(f"  {key}: {err['msg']}")  # a check of a whole table: its message names the values
        else:
            lines.append(f"  {key}: {err['msg']} (found {shown_value(err.get('input'), key in secrets)})")
    return "\n".join(lines)
