"""The ``bodycam`` command.  Each subcommand lives in the package it belongs to;
this module only gathers them and turns expected errors into clear messages
and exit codes (2: bad usage or input; 1: the operation failed)."""

from __future__ import annotations

import sys

import click

from bodycam import __version__
from bodycam.errors import BodycamError, SealingError
from bodycam.logs import LEVELS, setup_logging


class BodycamGroup(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except BodycamError as exc:
            click.echo(f"bodycam: error: {exc}", err=True)
            ctx.exit(1 if isinstance(exc, SealingError) else 2)
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


def _register() -> None:
    from device.cli import commands as device_commands
    from device.sealing.cli import commands as sealing_commands
    from dock.cli import commands as dock_commands

    from bodycam.seallog_view import commands as log_commands

    for command in (*sealing_commands, *device_commands, *dock_commands, *log_commands):
        main.add_command(command)
    # `config check` also knows the dock's config, which the recorder may not import.
    from bodycam.config_check import config_check

    main.commands["config"].add_command(config_check)  # type: ignore[attr-defined]


_register()


def run() -> None:
    sys.exit(main())
