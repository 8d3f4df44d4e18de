"""Recorder commands: ``bodycam record`` and ``bodycam demo``."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import click

from .config import load_hw_config
from .demo import run_demo
from .sealing.pki import check_officer_id
from .recorder import Recorder

STORAGE_CHECK_SECONDS = 5.0


def _officer(value: str | None) -> str | None:
    return check_officer_id(value) if value else None


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="hw-config file, e.g. hw-configs/sim.toml.")
@click.option("--state", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The recorder's enrolled state directory.")
@click.option("--seconds", type=click.FloatRange(0, 86400),
              help="Stop after this long; default: until SIGTERM / Ctrl-C.")
@click.option("--standby-seconds", default=0.0, type=click.FloatRange(0, 3600),
              help="Run the pre-roll this long before recording starts.")
@click.option("--officer", help="Officer ID stamped on the footage (normally set at the dock).")
def record(config_path: Path, state: Path, seconds: float | None, standby_seconds: float,
           officer: str | None) -> None:
    """Record from the configured camera and microphone, sealing as it goes.

    On SIGTERM or Ctrl-C the open segment is sealed before exiting.  After
    a power cut, the next start recovers the partial segment first.
    """
    config = load_hw_config(config_path)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    recorder = Recorder(config, state, config_name=config_path.name, officer=_officer(officer))
    for item in recorder.sealing.recovered:
        click.echo(f"recovered after unclean stop: {item}")
    try:
        recorder.power_on()
        stop.wait(standby_seconds)
        preroll = recorder.start(trigger="command")
        click.echo(f"recording (pre-roll {preroll:.1f} s, {recorder.last_start_latency * 1000:.0f} ms to start)",
                   nl=True)
        deadline = None if seconds is None else time.monotonic() + seconds
        next_check = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= next_check:
                next_check = now + STORAGE_CHECK_SECONDS
                if recorder.check_storage() == "stopped":
                    click.echo("storage nearly full: stopped with everything sealed", err=True)
                    break
            error = recorder.sources_error()
            if error is not None:
                click.echo(f"bodycam: error: capture failed: {error}", err=True)
                break
            stop.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - now)))
        sealed = list(recorder.segmenter.sealed) if recorder.segmenter else []
    finally:
        recorder.shutdown(reason="command")
    click.echo(f"sealed {len(sealed)} segment(s) in {state}")
    for name in sealed:
        click.echo(f"  {name}")


@click.command()
@click.option("--workdir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Empty folder for the demo's keys, recorder state and output.")
@click.option("--seconds", default=20, show_default=True, type=click.IntRange(2, 3600),
              help="How long to record.")
@click.option("--segment-seconds", default=5, show_default=True, type=click.IntRange(2, 600),
              help="Segment length; several chained segments are the point.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="hw-config (default: the project's hw-configs/sim.toml).")
def demo(workdir: Path, seconds: int, segment_seconds: int, config_path: Path | None) -> None:
    """Enrol a simulated recorder, record, seal, verify and unseal.

    Records SECONDS of the lavfi test pattern with a tone, with a notify, a
    mark, a photo and a refusal mark on the way, then verifies against the
    agency CA and decrypts with the archive identity.  Leaves the recorder's
    state in WORKDIR/recorder, the keys in WORKDIR/keys and the playable
    media in WORKDIR/unsealed.
    """
    ok = run_demo(workdir, seconds, segment_seconds, config_path, echo=click.echo)
    raise SystemExit(0 if ok else 1)


commands = (record, demo)
