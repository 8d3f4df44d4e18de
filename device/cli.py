"""Recorder commands: ``bodycam record``, ``selftest``, ``status``, ``config``."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

import click

from .config import load_hw_config
from .sealing.pki import check_officer_id

HW_CONFIG_HELP = "hw-config file, e.g. hw-configs/sim.toml (docs/format.md §18)."


def _officer(value: str | None) -> str | None:
    return check_officer_id(value) if value else None


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help=HW_CONFIG_HELP)
@click.option("--state", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The recorder's enrolled state directory.")
@click.option("--seconds", type=click.FloatRange(0, 86400),
              help="Stop after this long; default: until SIGTERM / Ctrl-C.")
@click.option("--standby", is_flag=True,
              help="Wait for the record or notify button instead of recording at once (the service).")
@click.option("--officer", help="Officer ID stamped on the footage (normally set at the dock).")
def record(config_path: Path, state: Path, seconds: float | None, standby: bool,
           officer: str | None) -> None:
    """Run the recorder: camera, microphone, buttons, indicators, health.

    Records at once (or, with --standby, when the record button is pressed),
    sealing as it goes.  SIGTERM or Ctrl-C seals the open segment before
    exiting; after a power cut the next start recovers the partial segment
    first.  Under systemd it reports READY once the camera delivers frames
    and pings the watchdog from its main loop.
    """
    from .service import RecorderService  # loads PyAV, numpy, gpiozero: only when recording

    config = load_hw_config(config_path)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service = RecorderService(config, state, config_name=config_path.name, officer=_officer(officer))
    recorder = service.recorder
    for item in recorder.sealing.recovered:
        click.echo(f"recovered after unclean stop: {item}")
    reason = "error"
    clean = False
    try:
        service.start_up()
        if not standby:
            refusal = service.start(trigger="command")
            if refusal:
                click.echo(f"not recording: {refusal}; standby, serving the dock link", err=True)
            else:
                click.echo(f"recording (pre-roll {recorder.last_preroll:.1f} s, "
                           f"{recorder.last_start_latency * 1000:.0f} ms to start)")
        else:
            click.echo("standby: press record to start")
        reason = service.run(stop, seconds=seconds)
    finally:
        clean = service.shutdown(reason=reason)
        sealed = list(recorder.sealed)
        if reason == "error":  # an exception is on its way to the command boundary
            click.echo(f"stopped after an error; sealed {len(sealed)} segment(s) in {state}", err=True)
    if reason.startswith("capture failed"):
        click.echo(f"bodycam: error: {reason}", err=True)
    click.echo(f"stopped ({reason}); sealed {len(sealed)} segment(s) in {state}")
    for name in sealed:
        click.echo(f"  {name}")
    code = 1 if reason.startswith("capture failed") else 0
    if not clean:
        # A source hung in its driver (e.g. PortAudio on a dead JACK server) and was
        # left behind; its library's exit handlers would hang the same way.  The
        # footage is sealed and the state closed: leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help=HW_CONFIG_HELP)
@click.option("--state", type=click.Path(path_type=Path, file_okay=False),
              help="The recorder's state directory: also check its key and certificate, and test its storage.")
@click.option("--unattended", is_flag=True,
              help="No prompts: outputs are read back from their pins; buttons are skipped on real hardware.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also keep the report (JSON, docs/format.md §16) in this file, written atomically.")
def selftest(config_path: Path, state: Path | None, unattended: bool, as_json: bool,
             out_path: Path | None) -> None:
    """Prove a recorder works before it goes out (technicians).

    Checks the camera delivers frames, the microphone level, the speaker,
    each button (prompted press with a timeout), each LED, the vibration
    motor and buzzer, the fuel gauge, that storage sustains 4x the recording
    bitrate, the RTC, the device key and certificate, and the clock state.

    The report names the device ID, the date and time (UTC), the software
    version, the config's name and SHA-256, and each check's result.  With
    --out it is kept in FILE; with --state it is also kept as
    STATE/selftest.json, which the dock reads for readiness.
    Exit status 0 when nothing failed, 1 otherwise, 2 for a bad config.
    """
    import logging

    from .selftest import SelfTest
    from .selftest_report import LAST_REPORT, write_report

    config = load_hw_config(config_path)
    test = SelfTest(config, state=state, unattended=unattended or as_json,
                    ask=lambda q: click.confirm(q, default=False))
    test.run()
    report = test.to_json(config_path)
    logging.getLogger("device.selftest").log(logging.INFO if test.passed else logging.ERROR,
                                             "%s, device %s, config %s", test.summary(),
                                             report["device_id"] or "not enrolled", report["config"]["name"])
    for path in ([out_path] if out_path else []) + ([state / LAST_REPORT] if state else []):
        write_report(report, path)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        click.echo(f"device {report['device_id'] or '(not enrolled: no --state)'}, {report['time_utc']}, "
                   f"{report['software']}, config {report['config']['name']} "
                   f"sha256 {report['config']['sha256']}\n")
        click.echo(test.table())
    raise SystemExit(0 if test.passed else 1)


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help=HW_CONFIG_HELP)
@click.option("--state", type=click.Path(path_type=Path, file_okay=False), default=Path("/var/lib/bodycam"),
              show_default=True, help="Where the footage is stored (for free space).")
@click.option("--json", "as_json", is_flag=True, help="Print the health snapshot as JSON.")
def status(config_path: Path, state: Path, as_json: bool) -> None:
    """Print the recorder's health now: battery, storage, clock, temperature."""
    from .clock import recorder_clock
    from .health.monitor import HealthMonitor

    from .service import STATUS_FILE

    config = load_hw_config(config_path)
    health = HealthMonitor(config, state if state.exists() else Path("/"),
                           recorder_clock(config, state if state.exists() else None)).read()
    snap = health.snapshot()
    running = _running_status(state / STATUS_FILE)
    if as_json:
        click.echo(json.dumps({**snap, "recorder": running} if running else snap, indent=2))
        return
    b = health.battery
    click.echo(f"battery   {'%.0f %%, %.2f V' % (b.percent, b.voltage) if b else health.battery_error or 'none'}"
               + (f", {b.minutes_left:.0f} min left" if b and b.minutes_left is not None else "")
               + (", charging" if b and b.charging else ""))
    click.echo(f"storage   {health.storage_free_bytes / 1e9:.1f} GB free = {health.storage_minutes:.0f} min of recording")
    click.echo(f"clock     {health.clock_state}; RTC {'present' if health.rtc.present else 'absent'}"
               + (f"; last dock sync {health.last_sync_utc}" if health.last_sync_utc else ""))
    click.echo(f"cpu temp  {'%.1f °C' % health.cpu_temp_c if health.cpu_temp_c is not None else 'unknown'}")
    if running:
        h = running.get("health") or {}
        click.echo(f"recorder  as of {running.get('utc')}: {'recording' if running.get('recording') else 'standby'}; "
                   f"camera {_alive(h.get('camera_alive'))}, microphone {_alive(h.get('microphone_alive'))}; "
                   f"audio overflows {h.get('audio_overflows')}, gaps {h.get('audio_gaps')}")
        for fault in h.get("source_faults") or []:
            click.echo(f"          ! {fault}")


def _alive(value) -> str:
    return {True: "alive", False: "DOWN", None: "none"}.get(value, str(value))


def _running_status(path: Path) -> dict | None:
    """What the running recorder last published, or None when there is none (or it is unreadable)."""
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        click.echo(f"{path}: unreadable ({exc})", err=True)
        return None
    return status if isinstance(status, dict) else None


@click.group("config")
def config_group() -> None:
    """Check hw-configs and dock configs."""


# Config kinds of other parts, registered by the entry point (bodycam/cli.py), since
# the recorder may not import the dock: kind -> (top-level key that marks it, loader,
# one-line summary of a valid config).
CONFIG_KINDS: dict[str, tuple[str, Callable[[Path], object], Callable[[object], str]]] = {}


def _check_one(path: Path) -> str:
    """Validate one config file as the program will use it; returns its summary line."""
    from .sealing.configfile import read_toml

    data = read_toml(path, "config")
    if "board" in data:
        config = load_hw_config(path)
        return (f"hw-config ({config.board}, camera {config.camera.backend}, gauge {config.power.gauge}, "
                f"rtc {config.rtc.kind})")
    for kind, (marker, load, describe) in CONFIG_KINDS.items():
        if marker in data:
            return f"{kind} config ({describe(load(path))})"
    from bodycam.errors import ConfigError

    known = ", ".join(f"'{marker}' ({kind})" for kind, (marker, _, _) in CONFIG_KINDS.items())
    raise ConfigError(f"{path}: neither a hw-config (no top-level 'board') nor another config "
                      f"({known or 'none registered'})")


@config_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def config_check(files: tuple[Path, ...]) -> None:
    """Validate hw-configs and dock configs as the programs will use them.

    A hw-config has a top-level `board`; a dock config has an `[archive]`
    table.  Checked: unknown keys, strict types, ranges, pin conflicts,
    unknown devices, time zones, I2C buses, addresses, regular expressions.
    Exit status 0 when all are valid, 2 otherwise; errors name the file, the
    key and what is allowed.
    """
    from bodycam.errors import ConfigError, InputError

    bad = 0
    for path in files:
        try:
            summary = _check_one(path)
        except (ConfigError, InputError) as exc:
            click.echo(str(exc), err=True)
            bad += 1
            continue
        click.echo(f"{path}: OK, {summary}")
    raise SystemExit(2 if bad else 0)


commands = (record, selftest, status, config_group)
