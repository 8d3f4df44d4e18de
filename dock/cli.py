"""``bodycam dock``: the daemon, its status, officer check-out and the registry."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import click

from .config import load_dock_config

DEFAULT_CONFIG = Path("/etc/bodycam/dock.toml")


@click.group("dock", invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=DEFAULT_CONFIG, show_default=True, help="Dock config (TOML).")
@click.pass_context
def dock_group(ctx: click.Context, config_path: Path) -> None:
    """Run the dock daemon (without a subcommand), or manage it.

    The daemon watches for recorders arriving on the USB ports of its bays,
    authenticates them, syncs their clock, pulls and verifies their sealed
    footage, commits it to the archive and hands back receipts so that the
    recorder may free the space.
    """
    ctx.obj = config_path
    if ctx.invoked_subcommand is None:
        from .daemon import DockDaemon

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
        daemon = DockDaemon(load_dock_config(config_path))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: daemon.stop.set())
        from device.sealing.systemd_notify import SystemdNotifier

        SystemdNotifier().ready(f"watching {len(daemon.config.bays)} bays")
        daemon.run()


@dock_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print each bay's progress as JSON (the dock's status.json).")
@click.pass_obj
def status(config_path: Path, as_json: bool) -> None:
    """Progress and outcome per bay."""
    config = load_dock_config(config_path)
    path = config.state / "status.json"
    bays = json.loads(path.read_text())["bays"] if path.exists() else {}
    if as_json:
        click.echo(json.dumps(bays, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'BAY':>3}  {'DEVICE':<8} {'PHASE':<17} {'PULLED':>9} {'ARCHIVED':>8} {'READY':<5} OUTCOME")
    for bay, p in sorted(bays.items(), key=lambda kv: int(kv[0])):
        ready = "-" if p.get("ready") is None else ("yes" if p["ready"] else "NO")
        click.echo(f"{bay:>3}  {p.get('device') or '?':<8} {p.get('phase', ''):<17} "
                   f"{p.get('bytes_pulled', 0) / 1e6:>7.1f}MB {p.get('segments_archived', 0):>8} {ready:<5} "
                   f"{p.get('outcome') or ''}")
        for reason in p.get("readiness", []) + p.get("flagged", []):
            click.echo(f"       ! {reason}")


@dock_group.command("checkout")
@click.option("--bay", required=True, type=click.IntRange(1, 64),
              help="The bay (1-64, [[bays]] of the dock config) holding the recorder.")
@click.option("--officer", required=True, help="Officer ID from the registry.")
@click.pass_obj
def checkout(config_path: Path, bay: int, officer: str) -> None:
    """Assign the recorder in BAY to a certified, unexpired officer (Art. 8)."""
    from .registry import Registry

    config = load_dock_config(config_path)
    o = Registry(config.state / "registry.sqlite").checkout(bay, officer)
    click.echo(f"bay {bay}: next shift for {o.officer} {o.name} ({o.department}), "
               f"certificate {o.certificate} valid until {o.valid_until}; sent at the next docking")


@dock_group.command("import-officers")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_obj
def import_officers(config_path: Path, csv_file: Path) -> None:
    """Replace the officer registry with CSV_FILE.

    Columns: officer_id,name,department,certificate_no,valid_until (YYYY-MM-DD).
    """
    from .registry import Registry

    config = load_dock_config(config_path)
    n = Registry(config.state / "registry.sqlite").import_csv(csv_file)
    click.echo(f"{n} officers imported")


@dock_group.command("pull")
@click.option("--bay", default=1, show_default=True, type=click.IntRange(1, 64),
              help="The bay number the docking is reported under (status, check-out).")
@click.option("--url", required=True, help="The recorder's dock link, e.g. https://[fe80::ff:fe00:1%25usb1]:8443")
@click.option("--device", help="Expected device ID.")
@click.pass_obj
def pull(config_path: Path, bay: int, url: str, device: str | None) -> None:
    """Dock one recorder by address, without waiting for udev (technicians)."""
    from .daemon import DockDaemon

    daemon = DockDaemon(load_dock_config(config_path))
    progress = daemon.dock(bay, url, device)
    click.echo(f"bay {bay}: {progress.outcome}; archived {progress.segments_archived}, "
               f"freed {progress.segments_deleted}; ready: {progress.ready}")
    for reason in progress.readiness + progress.flagged:
        click.echo(f"  ! {reason}")
    raise SystemExit(0 if progress.outcome == "done" else 1)


commands = (dock_group,)
