"""``bodycam archive console``: the station console on its own port, beside the archive service."""

from __future__ import annotations

import signal
import socket
import stat
import threading
from pathlib import Path

import click

from bodycam.errors import BodycamError

SESSION_KEY_FILE_LIMIT = 4096  # bytes; the key file holds 44 characters of base64


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
    from device.sealing.safeio import read_text_bounded

    from .app import RunningConsole, check_tls_pair, session_key_from
    from ..cli import _archive

    _check_listen(listen)
    for board in dock_status:
        _check_dock_status(board)
    key = None
    if session_key_file is not None:
        try:
            key = session_key_from(read_text_bounded(session_key_file, SESSION_KEY_FILE_LIMIT, "--session-key file"))
        except BodycamError:
            raise
        except ValueError as exc:
            raise click.BadParameter(f"{session_key_file}: {exc}", param_hint="--session-key") from None
    if (tls_certificate is None) != (tls_key is None):
        raise click.UsageError("give both --tls-certificate and --tls-key, or neither")
    if tls_certificate is not None:
        check_tls_pair(tls_certificate, tls_key)  # before the archive opens: InputError/TrustError name the file
    archive = _archive(ctx)
    try:
        running = RunningConsole(archive, host=listen, port=port, dock_status=list(dock_status), session_key=key,
                                 tls=(tls_certificate, tls_key) if tls_certificate else None).start()
    except BodycamError:
        raise
    except OSError as exc:  # bind: address in use, not this machine's, no permission
        raise click.UsageError(f"--listen {listen} --port {port}: cannot listen there "
                               f"({exc.strerror or exc})") from None
    click.echo(f"station console on {running.url}/ (Ctrl-C to stop)", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.stop()
    archive.close()


def _check_listen(listen: str) -> None:
    """--listen must name an address or a host name this machine resolves (BadParameter otherwise)."""
    if not listen.strip():
        raise click.BadParameter("empty; give an address such as 127.0.0.1, or 0.0.0.0 for every interface",
                                 param_hint="--listen")
    try:
        socket.getaddrinfo(listen, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise click.BadParameter(f"{listen!r} is not an address or a host name this machine resolves "
                                 f"({getattr(exc, 'strerror', None) or exc})", param_hint="--listen") from None


def _check_dock_status(path: Path) -> None:
    """A dock's status board: a folder, or its status.json, a regular file (absent is fine: nothing docked yet).
    A FIFO or a device would hang the page that reads it, so it is refused here (BadParameter)."""
    for candidate in (path, path / "status.json"):
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            continue
        except OSError as exc:
            raise click.BadParameter(f"{candidate}: {exc.strerror}", param_hint="--dock-status") from None
        if candidate == path and stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise click.BadParameter(f"{candidate}: not a folder or a regular file; refused",
                                     param_hint="--dock-status")


def register(group: click.Group) -> None:
    group.add_command(console_command)
