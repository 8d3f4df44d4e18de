"""``bodycam demo``: the whole flow on simulated hardware, in one folder.

    DIR/keys/ca/          agency CA (ca.key, ca.crt)
    DIR/keys/archive/     archive recipient key (the identity that decrypts)
    DIR/recorder/         the recorder's state (identity/, seallog/, segments/)
    DIR/dock/             the dock's config and state
    DIR/archive/          the embedded archive (write-once store, SQLite index, archive.toml)
    DIR/unsealed/         what `bodycam unseal` wrote

The demo sits above all parts: it drives the recorder, the dock and the
archive service (on the embedded default: a local write-once directory and
SQLite, served over mutual TLS on loopback).
"""

from __future__ import annotations

import datetime as dt
import json

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from bodycam.errors import InputError, UsageError

from device.config import load_hw_config
from device.sealing import pki

DEMO_DEVICE = "A123456"
DEMO_OFFICER = "010203"
DEMO_AGENCY = "Demo District Administrative Enforcement"
SIM_CONFIG = Path(__file__).resolve().parent.parent / "hw-configs" / "sim.toml"
DEMO_AGENCY_ID = "demo-district"
DEMO_SUB_UNIT = "市场监管执法一股"
DEMO_CASE = "顺市监罚〔2026〕17号"
STANDBY_SECONDS = 2.0


@dataclass(frozen=True)
class DemoKeys:
    ca_dir: Path
    ca_cert: Path
    archive_identity: Path
    recipient_cert: Path
    state: Path


def enrol_demo(workdir: Path, device_id: str = DEMO_DEVICE) -> DemoKeys:
    """Create a CA and an archive identity and enrol a sim recorder under workdir."""
    keys = workdir / "keys"
    state = workdir / "recorder"
    if (keys / "ca" / "ca.key").exists() or (state / pki.IDENTITY_DIR).exists():
        raise UsageError(f"{workdir} already holds a demo; use a new --workdir")
    ca = pki.create_ca(keys / "ca", DEMO_AGENCY)
    archive_dir = keys / "archive"
    identity = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "archive-demo", archive_dir)
    recipient_cert = identity.with_suffix(".crt")
    pki.enrol_device(ca, state, device_id, pki.load_cert(recipient_cert))
    return DemoKeys(keys / "ca", keys / "ca" / "ca.crt", identity, recipient_cert, state)


def run_demo(workdir: Path, seconds: int, segment_seconds: int, config_path: Path | None,
             echo: Callable[[str], None], dock: bool = True) -> bool:
    from device.recorder import REFUSAL, Recorder
    from device.sealing.unseal import unseal_recordings
    from device.sealing.verifier import Verifier

    config_path = config_path or SIM_CONFIG
    if not config_path.exists():
        raise InputError(f"{config_path}: hw-config not found; pass --config")
    config = load_hw_config(config_path)
    config = config.model_copy(update={
        "recording": config.recording.model_copy(update={"segment_seconds": segment_seconds})})
    keys = enrol_demo(workdir)
    echo(f"enrolled device {DEMO_DEVICE}; agency CA and archive identity in {workdir / 'keys'}")
    recorder = Recorder(config, keys.state, config_name=config_path.name, officer=DEMO_OFFICER)
    events = []
    try:
        recorder.power_on()
        time.sleep(STANDBY_SECONDS)  # let the pre-roll fill a little
        preroll = recorder.start(trigger="demo")
        echo(f"recording {seconds} s (pre-roll {preroll:.1f} s) ...")
        script = {
            seconds * 0.2: ("notify", recorder.notify),
            seconds * 0.4: ("mark", recorder.mark),
            seconds * 0.6: ("photo", recorder.photo),
            seconds * 0.8: ("refusal mark", lambda: recorder.mark(REFUSAL)),
        }
        start = time.monotonic()
        for at, (name, action) in sorted(script.items()):
            time.sleep(max(0.0, start + at - time.monotonic()))
            action()
            events.append(name)
            echo(f"  {time.monotonic() - start:5.1f} s  {name}")
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        recorder.stop(reason="demo")
        sealed = list(recorder.segmenter.sealed)
    finally:
        recorder.shutdown(reason="demo")
    anchor = pki.load_cert(keys.ca_cert)
    verifier = Verifier(anchor, pki.load_x25519_key(keys.archive_identity))
    echo(f"recorded     {seconds} s + {preroll:.1f} s pre-roll; events {', '.join(events)}")
    if not dock:
        report = verifier.verify([keys.state])
        result = unseal_recordings(verifier, keys.state, workdir / "unsealed")
        source = "recorder"
    else:
        report_rec = verifier.verify([keys.state])
        echo(f"on recorder  {len(sealed)} video segments + photo, {'VERIFIED' if report_rec.ok else 'FAILED'}")
        export = _dock_and_archive(workdir, keys, config, echo)
        if export is None:
            return False
        report = verifier.verify([export])
        result = unseal_recordings(verifier, export, workdir / "unsealed")
        source = "archive"
    media = sorted(p.name for p in result.files if p.suffix != ".json")
    echo(f"segments     {len(sealed)} video segments sealed and chained, plus {len(media) - len(sealed)} photo")
    echo(f"verification {'VERIFIED' if report.ok else 'FAILED'} from the {source} against agency CA "
         f"{report.trust_anchor['sha256'][:16]} (plaintext checked)")
    echo(f"unsealed     {len(media)} media files in {workdir / 'unsealed'}")
    for line in media:
        echo(f"               {line}")
    target = workdir / "archive-export" / DEMO_DEVICE if dock else keys.state
    echo(f"try          bodycam verify --ca {keys.ca_cert} {target}")
    return report.ok and result.ok


def _toml_string(value) -> str:
    """A TOML basic string (JSON's escapes are a subset TOML accepts): paths may hold quotes."""
    return json.dumps(str(value), ensure_ascii=False)


def _dock_and_archive(workdir: Path, keys: DemoKeys, config, echo: Callable[[str], None]) -> Path | None:
    """Dock the recorder over a local link; the dock commits through the archive
    service (mutual TLS on loopback, embedded store); then label, search and export.

    Returns the archive's export of the demo device (a recording folder), or None
    when the docking did not finish (its outcome is printed)."""
    from archive.config import load_archive_config
    from archive.server import RunningServer
    from archive.service import Archive
    from device.clock import SystemClock
    from device.docklink import DockLink
    from device.health.monitor import HealthMonitor
    from device.sealing.state import SealingState
    from dock.config import load_dock_config
    from dock.daemon import DockDaemon

    ca = pki.load_ca(keys.ca_dir)
    dock_key = pki.issue_keypair(ca, pki.ROLE_DOCK, "station-1", workdir / "keys" / "dock")
    receipt_key = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-demo", workdir / "keys" / "archive")
    archive_dir = workdir / "archive"
    archive_dir.mkdir()
    q = _toml_string
    index_url = f"sqlite:///{archive_dir / 'index.sqlite'}"
    (archive_dir / "archive.toml").write_text(
        f'state = {q(archive_dir / "state")}\n\n[server]\nlisten = "127.0.0.1"\nport = 0\n'
        f'key = {q(receipt_key)}\ncertificate = {q(receipt_key.with_suffix(".crt"))}\n\n'
        f'[store]\nbackend = "local"\npath = {q(archive_dir / "store")}\n\n'
        f'[index]\nurl = {q(index_url)}\n\n'
        f'[[agencies]]\nid = {q(DEMO_AGENCY_ID)}\nname = {q(DEMO_AGENCY)}\nca = {q(keys.ca_cert)}\n'
        f'receipt_key = {q(receipt_key)}\nreceipt_certificate = {q(receipt_key.with_suffix(".crt"))}\n'
        f'\n[lawful_use.recipient_keys]\n{q(DEMO_AGENCY_ID)} = {q(keys.archive_identity)}\n')
    archive = Archive(load_archive_config(archive_dir / "archive.toml"))
    service = RunningServer(archive).start()
    dock_dir = workdir / "dock"
    dock_dir.mkdir()
    valid_until = (dt.date.today() + dt.timedelta(days=5 * 365)).isoformat()  # certificates valid 5 more years
    (dock_dir / "officers.csv").write_text(
        "officer_id,name,department,certificate_no,valid_until\n"
        f"{DEMO_OFFICER},Zhang Wei,{DEMO_SUB_UNIT},LN210123,{valid_until}\n"
        f"020304,Li Na,{DEMO_SUB_UNIT},LN210456,{valid_until}\n")
    sealing = SealingState.open(keys.state, SystemClock(config.initial_clock_state))
    monitor = HealthMonitor(config, keys.state, sealing.clock)
    link = DockLink(sealing, health=lambda: monitor.read().snapshot())
    port = link.start("127.0.0.1")
    (dock_dir / "dock.toml").write_text(
        f'key = {q(dock_key)}\ncertificate = {q(dock_key.with_suffix(".crt"))}\nca = {q(keys.ca_cert)}\n'
        f'state = {q(dock_dir / "state")}\n\n[archive]\nurl = {q(service.url)}\n\n'
        f'[[bays]]\nbay = 1\nusb_path = "demo"\n\n[recorder]\naddress = "127.0.0.1"\nport = {port}\n')
    try:
        daemon = DockDaemon(load_dock_config(dock_dir / "dock.toml"))
        daemon.registry.import_csv(dock_dir / "officers.csv")
        daemon.registry.checkout(1, "020304")
        echo(f"docking      dock station-1 -> archive service {service.url} (mutual TLS), "
             f"store {archive_dir / 'store'}; link https://127.0.0.1:{port}")
        progress = daemon.dock(1, f"https://127.0.0.1:{port}", DEMO_DEVICE)
        # The docking's result right under the docking line, before anything builds on it.
        left = list((keys.state / "segments").glob("*.bcseg"))
        offset = f"{progress.clock_offset_ms:.1f} ms" if progress.clock_offset_ms is not None else "not measured"
        echo(f"docked       bay 1: {progress.outcome}; clock offset {offset}; "
             f"{progress.segments_archived} segments archived, {progress.segments_deleted} freed on the recorder "
             f"({len(left)} left)" + ("; next officer assigned; ready for a shift: "
                                      f"{progress.ready}" if progress.outcome == "done" else ""))
        for reason in [*progress.flagged, *progress.readiness]:
            echo(f"               ! {reason}")
    finally:
        link.stop()
        sealing.close()
        service.stop()
    if progress.outcome != "done":
        echo(f"stopped      the docking did not finish, so nothing reached the archive; the recorder keeps "
             f"its footage in {keys.state}")
        archive.close()
        return None
    try:
        rows = archive.search(device=DEMO_DEVICE)
        marked = [r["name"] for r in rows if "refusal" in r["marks"]] or [r["name"] for r in rows[:1]]
        if rows:
            archive.label(None, marked, case_number=DEMO_CASE, party="某某餐饮有限公司", cause="未按规定公示食品经营许可证",
                          act_type="inspection", sub_unit=DEMO_SUB_UNIT, who=DEMO_OFFICER)
            echo(f"labelled     {len(marked)} segment(s) to case {DEMO_CASE} (当事人 某某餐饮有限公司, 案由 未按规定公示"
                 f"食品经营许可证); retention now the case file's")
        found = archive.search(officer=DEMO_OFFICER, party="餐饮", since="2000-01-01")
        echo(f"search       officer {DEMO_OFFICER}, 当事人 ~ 餐饮: {len(found)} segment(s): "
             + ", ".join(f"{r['name']} [{r['retention_class']} until {r['retain_until'][:10]}]" for r in found))
        echo(f"try          bodycam archive --config {archive_dir / 'archive.toml'} search --officer {DEMO_OFFICER}")
        export = archive.export_recording(DEMO_DEVICE, workdir / "archive-export" / DEMO_DEVICE)
        if rows:
            from archive.lawful_demo import approved_export

            approved_export(archive, DEMO_CASE, workdir / "evidence-package", echo)
    finally:
        archive.close()
    return export


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
@click.option("--serve", is_flag=True, help="Keep the station console running until Ctrl-C (without: it starts, "
                                            "prints its address and logins, and stops).")
def demo(workdir: Path, seconds: int, segment_seconds: int, config_path: Path | None, no_dock: bool,
         serve: bool) -> None:
    """Enrol a simulated recorder, record, seal, dock, archive, label and search.

    Records SECONDS of the lavfi test pattern with a tone, with a notify, a
    mark, a photo and a refusal mark on the way; then docks the recorder over
    a local link: the dock syncs its clock, pulls and verifies the footage and
    commits it through the archive service (HTTPS, mutual TLS, the embedded
    write-once store and SQLite index), which signs the receipts; the
    recorder then frees the space.  The refusal-marked segment is labelled
    to a case (当事人, 案由, act type) and found again by a search.  Finally
    the archive's copy is verified against the agency CA and decrypted with
    the archive identity.

    Leaves the keys in WORKDIR/keys, the recorder's state in
    WORKDIR/recorder, the dock in WORKDIR/dock, the archive (with its
    archive.toml) in WORKDIR/archive and the playable media in
    WORKDIR/unsealed.  With --no-dock it stops after recording, verifying and
    unsealing on the recorder, leaving WORKDIR/recorder as it was.
    """
    # Absolute: the archive config resolves relative paths against its own folder.
    workdir = workdir.absolute()
    ok = run_demo(workdir, seconds, segment_seconds, config_path, echo=click.echo, dock=not no_dock)
    if ok and not no_dock:
        from bodycam.demo_console import start_demo_console

        start_demo_console(workdir, click.echo, serve=serve)
    raise SystemExit(0 if ok else 1)


commands = (demo,)
