"""Recorder commands: ``bodycam record`` and ``bodycam demo``."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from .config import load_hw_config
from .demo import run_demo
from .sealing.pki import check_officer_id


def _officer(value: str | None) -> str | None:
    return check_officer_id(value) if value else None


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="hw-config file, e.g. hw-configs/sim.toml.")
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
    try:
        service.start_up()
        if not standby:
            preroll = recorder.start(trigger="command")
            service.indicators.show("recording", recorder.audio_only)
            click.echo(f"recording (pre-roll {preroll:.1f} s, "
                       f"{recorder.last_start_latency * 1000:.0f} ms to start)")
        else:
            click.echo("standby: press record to start")
        reason = service.run(stop, seconds=seconds)
        sealed = list(recorder.segmenter.sealed) if recorder.segmenter else []
    finally:
        service.shutdown(reason=reason)
    if reason.startswith("capture failed"):
        click.echo(f"bodycam: error: {reason}", err=True)
    click.echo(f"stopped ({reason}); sealed {len(sealed)} segment(s) in {state}")
    for name in sealed:
        click.echo(f"  {name}")
    raise SystemExit(1 if reason.startswith("capture failed") else 0)


@click.command()
@click.option("--workdir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Empty folder for the demo's keys, recorder state and output.")
@click.option("--seconds", default=20, show_default=True, type=click.IntRange(2, 3600),
              help="How long to record.")
@click.option("--segment-seconds", default=5, show_default=True, type=click.IntRange(2, 600),
              help="Segment length; several chained segments are the point.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="hw-config (default: the project's hw-configs/sim.toml).")
@click.option("--no-dock", is_flag=True, help="Stop after recording, verifying and unsealing on the recorder.")
def demo(workdir: Path, seconds: int, segment_seconds: int, config_path: Path | None, no_dock: bool) -> None:
    """Enrol a simulated recorder, record, seal, verify and unseal.

    Records SECONDS of the lavfi test pattern with a tone, with a notify, a
    mark, a photo and a refusal mark on the way; then docks the recorder over
    a local link: the dock syncs its clock, pulls and verifies the footage,
    commits it to the archive and hands back receipts, after which the
    recorder frees the space.  Finally it verifies the archive's copy
    against the agency CA and decrypts it with the archive identity.

    Leaves the keys in WORKDIR/keys, the recorder's state in
    WORKDIR/recorder, the dock in WORKDIR/dock, the archive in
    WORKDIR/archive and the playable media in WORKDIR/unsealed.  With
    --no-dock it stops after recording, verifying and unsealing on the
    recorder, leaving WORKDIR/recorder as it was.
    """
    ok = run_demo(workdir, seconds, segment_seconds, config_path, echo=click.echo, dock=not no_dock)
    raise SystemExit(0 if ok else 1)


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False))
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
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--state", type=click.Path(path_type=Path, file_okay=False), default=Path("/var/lib/bodycam"),
              show_default=True, help="Where the footage is stored (for free space).")
@click.option("--json", "as_json", is_flag=True, help="Print the health snapshot as JSON.")
def status(config_path: Path, state: Path, as_json: bool) -> None:
    """Print the recorder's health now: battery, storage, clock, temperature."""
    from .clock import SystemClock
    from .health.monitor import HealthMonitor

    config = load_hw_config(config_path)
    health = HealthMonitor(config, state if state.exists() else Path("/"),
                           SystemClock(config.initial_clock_state)).read()
    snap = health.snapshot()
    if as_json:
        click.echo(json.dumps(snap, indent=2))
        return
    b = health.battery
    click.echo(f"battery   {'%.0f %%, %.2f V' % (b.percent, b.voltage) if b else health.battery_error or 'none'}"
               + (f", {b.minutes_left:.0f} min left" if b and b.minutes_left is not None else "")
               + (", charging" if b and b.charging else ""))
    click.echo(f"storage   {health.storage_free_bytes / 1e9:.1f} GB free = {health.storage_minutes:.0f} min of recording")
    click.echo(f"clock     {health.clock_state}; RTC {'present' if health.rtc.present else 'absent'}"
               + (f"; last dock sync {health.last_sync_utc}" if health.last_sync_utc else ""))
    click.echo(f"cpu temp  {'%.1f °C' % health.cpu_temp_c if health.cpu_temp_c is not None else 'unknown'}")


@click.group("config")
def config_group() -> None:
    """Check hw-config files."""


@config_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def config_check(files: tuple[Path, ...]) -> None:
    """Validate hw-configs: unknown keys, ranges, pin conflicts, unknown devices.

    Exit status 0 when all are valid, 2 otherwise; errors name the file, the
    key and what is allowed.
    """
    from bodycam.errors import ConfigError, InputError

    bad = 0
    for path in files:
        try:
            config = load_hw_config(path)
        except (ConfigError, InputError) as exc:
            click.echo(str(exc), err=True)
            bad += 1
            continue
        click.echo(f"{path}: OK ({config.board}, camera {config.camera.backend}, gauge {config.power.gauge}, "
                   f"rtc {config.rtc.kind})")
    raise SystemExit(2 if bad else 0)


commands = (record, demo, selftest, status, config_group)
