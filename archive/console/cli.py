"""``bodycam archive console``: the station console on its own port, beside the archive service."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click


@click.command("console")
@click.option("--listen", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8446, show_default=True, type=click.IntRange(0, 65535),
              help="HTTPS port (0 picks a free one).")
@click.option("--dock-status", "dock_status", multiple=True,
              type=click.Path(path_type=Path, exists=False),
              help="A dock's status board (its state folder or status.json); repeat for each dock.")
@click.option("--session-key", "session_key_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="File with base64 of 32 random bytes that encrypt the session cookies "
                   "(default: random, so sessions end with the process).")
@click.option("--tls-certificate", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The console's web certificate (ECDSA or RSA; PEM).  Default: [server]'s, which "
                   "browsers refuse if it is Ed25519.")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Its private key (PEM).")
@click.pass_context
def console_command(ctx: click.Context, listen: str, port: int, dock_status: tuple[Path, ...],
                    session_key_file: Path | None, tls_certificate: Path | None, tls_key: Path | None) -> None:
    """Serve the station console (HTTPS, the archive's [server] certificate) until interrupted.

    The web console for dock operators, archive keepers, agency heads
    (approvals with TOTP), reviewers and auditors; Simplified Chinese by
    default, English on a switch.  People sign in with the accounts made by
    ``bodycam archive account add``.  It reads the docks' status boards
    given with --dock-status and works on the same store and index as the
    archive service.
    """
    from .app import RunningConsole, session_key_from
    from ..cli import _archive

    key = None
    if session_key_file is not None:
        try:
            key = session_key_from(session_key_file.read_text())
        except ValueError as exc:
            raise click.BadParameter(f"{session_key_file}: {exc}", param_hint="--session-key") from None
    if (tls_certificate is None) != (tls_key is None):
        raise click.UsageError("give both --tls-certificate and --tls-key, or neither")
    archive = _archive(ctx)
    running = RunningConsole(archive, host=listen, port=port, dock_status=list(dock_status), session_key=key,
                             tls=(tls_certificate, tls_key) if tls_certificate else None).start()
    click.echo(f"station console on {running.url}/ (Ctrl-C to stop)", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.stop()
    archive.close()


def register(group: click.Group) -> None:
    group.add_command(console_command)
