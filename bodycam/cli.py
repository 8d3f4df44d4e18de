"""The ``bodycam`` command.  Each subcommand lives in the package it belongs to;
this module only gathers them and turns expected errors into clear messages
and exit codes (2: bad usage or input; 1: the operation failed)."""

from __future__ import annotations

import importlib
import sys

import click

from bodycam import __version__
from bodycam.errors import BodycamError, SealingError, VerificationError
from bodycam.logs import LEVELS, setup_logging


# Where subcommands come from: the read side (verify, unseal, excerpt, pki) needs only
# the format package; the recorder's and dock's commands are imported only
# when one of them is asked for (or for --help), so that `bodycam verify`
# runs on an install without the recorder's dependencies (pyproject extras).
READ_SIDE = "device.sealing.cli"
OTHER_SOURCES = ("bodycam.seallog_view", "device.cli", "dock.cli", "archive.cli", "bodycam.demo")


def _commands_of(module: str) -> tuple[click.Command, ...]:
    return tuple(importlib.import_module(module).commands)


def _add_config_kinds() -> None:
    """`bodycam config check` also checks the dock's and the archive's configs;
    the recorder may not import them, so the entry point introduces them."""
    from device.cli import CONFIG_KINDS

    try:
        from dock.config import describe_dock_config, load_dock_config
    except ImportError:  # an install without the dock extra
        pass
    else:
        CONFIG_KINDS["dock"] = ("archive", load_dock_config, describe_dock_config)
    try:
        from archive.config import load_archive_config
    except ImportError:  # an install without the archive extra
        pass
    else:
        CONFIG_KINDS["archive"] = ("store", load_archive_config, _describe_archive_config)


def _describe_archive_config(config) -> str:
    """One line for `bodycam config check`; the index URL's scheme only (it may hold a password)."""
    return (f"store {config.store.backend}, index {config.index.url.split(':', 1)[0]}, "
            f"{len(config.agencies)} agency(ies)")


# Abbreviations that end in a full stop inside a sentence ("Art. 19", "e.g. a dock").
_ABBREVIATIONS = ("Art.", "Arts.", "e.g.", "i.e.", "cf.", "No.")


def short_help_of(text: str | None, limit: int = 60) -> str:
    """The first sentence of a command's help for the list of commands: click's
    own rule ends it at the first word ending in a full stop, which cuts
    "Find segments by any Art. 20 field" after "Art."; this one does not end
    it at the abbreviations above, and shortens at a word boundary."""
    words = (text or "").split("\n\n", 1)[0].split()
    out: list[str] = []
    for word in words:
        out.append(word)
        if word.endswith(".") and word.lstrip("(") not in _ABBREVIATIONS:
            break
    sentence = " ".join(out).rstrip(".")
    if len(sentence) <= limit:
        return sentence
    kept = sentence[:limit].rsplit(" ", 1)[0].split(" ")
    while len(kept) > 1 and kept[-1].lstrip("(") in _ABBREVIATIONS:  # never end on "(Art."
        kept.pop()
    return " ".join(kept) + " …"


def _set_short_help(command: click.Command) -> None:
    """Give ``command`` and its subcommands a short help by :func:`short_help_of`
    unless they set their own."""
    if command.short_help is None and command.help:
        command.short_help = short_help_of(command.help)
    for sub in getattr(command, "commands", {}).values():
        _set_short_help(sub)


class BodycamGroup(click.Group):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()
        self._unavailable: dict[str, str] = {}

    def _load(self, module: str) -> None:
        if module in self._loaded:
            return
        self._loaded.add(module)
        try:
            commands = _commands_of(module)
        except ImportError as exc:
            # An install without that part's extra: say which extra brings it.
            self._unavailable[module] = exc.name or str(exc)
            return
        for command in commands:
            _set_short_help(command)
            self.add_command(command)
        if module == "device.cli":
            _add_config_kinds()

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in (READ_SIDE, *OTHER_SOURCES):
            self._load(module)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load(READ_SIDE)
        found = super().get_command(ctx, cmd_name)
        for module in OTHER_SOURCES:
            if found is not None:
                break
            self._load(module)
            found = super().get_command(ctx, cmd_name)
        if found is None and self._unavailable:
            missing = ", ".join(sorted(set(self._unavailable.values())))
            ctx.fail(f"no command {cmd_name!r} in this install (missing: {missing}; install "
                     "bodycam[recorder], bodycam[dock] or bodycam[archive])")
        return found

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except BodycamError as exc:
            click.echo(f"bodycam: error: {exc}", err=True)
            ctx.exit(1 if isinstance(exc, (SealingError, VerificationError)) else 2)
        except OSError as exc:
            # A path given on the command line that cannot be used (read-only,
            # missing parent, permission): name it rather than show a traceback.
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"bodycam: error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("bodycam: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=BodycamGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bodycam")
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False),
              help="Log from this level on (default: $BODYCAM_LOG_LEVEL, else info under "
                   "systemd's journal and warning on a terminal).")
def main(log_level: str | None) -> None:
    """Body-worn evidence recorder: record, seal, verify, dock and archive.

    Footage is signed and encrypted on the recorder the moment it is
    captured; only the agency archive can decrypt it, and anyone holding the
    agency CA certificate can verify it.  Start with `bodycam demo`.
    """
    try:
        setup_logging(log_level)
    except ValueError as exc:  # a bad $BODYCAM_LOG_LEVEL
        raise click.UsageError(str(exc)) from None



def run() -> None:
    sys.exit(main())
