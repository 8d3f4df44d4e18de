"""``bodycam archive …``: serve, search, label, hold, expire, scrub, attach, status.

Every command reads the archive config (``--config``, or the environment
variable BODYCAM_ARCHIVE_CONFIG) and takes ``--json`` for machine output.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from .config import load_archive_config

SEGMENTS_HELP = "Segments by digest or name (repeat, or several arguments)."

log = logging.getLogger(__name__)


def _archive(ctx: click.Context):
    from .service import Archive

    obj = ctx.find_object(dict)
    if "archive" not in obj:
        path = obj.get("config")
        if path is None:
            raise click.UsageError("give --config archive.toml (or set BODYCAM_ARCHIVE_CONFIG)")
        obj["archive"] = Archive(load_archive_config(path))
        ctx.call_on_close(obj["archive"].close)
    return obj["archive"]


def _emit(as_json: bool, value: Any, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))
    elif text is not None:
        click.echo(text)


def _progress(total: int, label: str):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeRemainingColumn(), transient=True)
    return progress, progress.add_task(label, total=total)


class ArchiveGroup(click.Group):
    """Index failures (database unreachable, permission) become clear errors, not tracebacks."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        from sqlalchemy.exc import SQLAlchemyError

        from .service import ArchiveError

        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            raise ArchiveError(f"archive index: {getattr(exc, 'orig', None) or exc}") from None


@click.group("archive", cls=ArchiveGroup)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              envvar="BODYCAM_ARCHIVE_CONFIG",
              help="The archive config (TOML: [server], [store], [index], [retention], [[agencies]]).")
@click.pass_context
def archive_group(ctx: click.Context, config_path: Path | None) -> None:
    """The archive: write-once store, Art. 20 index, retention and watch.

    The archive service receives footage from docks over HTTPS with mutual
    TLS, stores it write-once (a local directory, or S3 Object Lock in
    COMPLIANCE mode), indexes it by agency, 股室, device, officer, time,
    当事人, case number, 案由, act type, marks and events, and signs the
    receipts that let recorders free their space.  The other commands work
    on the same store and index directly, on the archive host.
    """
    ctx.ensure_object(dict)["config"] = config_path


@archive_group.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="The archive config, as after `archive` (the unit's form: "
                   "`bodycam archive serve --config /etc/bodycam/archive.toml`).")
@click.pass_context
def serve(ctx: click.Context, config_path: Path | None) -> None:
    """Run the archive service until interrupted (SIGINT/SIGTERM).

    Listens on [server] listen:port with TLS 1.3; only docks whose
    certificate (role dock) was issued by a configured agency's CA are
    served.  The receipt keys stay on this host.  Under systemd
    (Type=notify) it says READY=1 once both listeners are up and STOPPING=1
    when it stops.
    """
    from device.sealing.systemd_notify import SystemdNotifier

    from .server import serve_forever

    notifier = SystemdNotifier()
    if config_path is not None:
        ctx.find_object(dict)["config"] = config_path
    archive = _archive(ctx)

    def ready(url: str) -> None:
        status = f"archive service on {url}; store {archive.store.describe()}; agencies {', '.join(archive.agencies)}"
        click.echo(status, err=True)
        # bodycam-archive.service is Type=notify: the docks' ordering waits for this.
        # serve_forever() has installed its stop handlers before calling back.
        notifier.ready(status)

    try:
        serve_forever(archive, on_ready=ready)
    finally:
        notifier.stopping()
        log.info("archive service stopped")


@archive_group.command()
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--sub-unit", help="股室 (sub-unit), exact.")
@click.option("--device", help="Recorder serial, exact.")
@click.option("--officer", help="Officer number, exact.")
@click.option("--party", help="当事人 (case party), substring.")
@click.option("--case", "case_number", help="Case number, exact.")
@click.option("--cause", help="案由 (cause of action), substring.")
@click.option("--act-type", help="Kind of enforcement act (Art. 14).")
@click.option("--mark", help="A mark kind on the segment (mark, refusal).")
@click.option("--event", help="An event in the segment (notify, mark, photo …).")
@click.option("--class", "retention_class", type=click.Choice(["patrol", "review", "case", "art13"]),
              help="Retention class.")
@click.option("--media", help="Media type, exact.")
@click.option("--since", help="Opened at or after (2026-11-27 or ISO 8601, UTC if no zone).")
@click.option("--until", help="Opened before (same forms).")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="At most this many segments, oldest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.pass_context
def search(ctx: click.Context, agency, sub_unit, device, officer, party, case_number, cause, act_type, mark,
           event, retention_class, media, since, until, limit, as_json) -> None:
    """Find segments by any Art. 20 field and a time range (all filters combine)."""
    rows = _archive(ctx).search(agency, sub_unit=sub_unit, device=device, officer=officer, party=party,
                                case_number=case_number, cause=cause, act_type=act_type, mark=mark, event=event,
                                retention_class=retention_class, media=media, since=since, until=until,
                                limit=limit)
    if as_json:
        _emit(True, rows)
        return
    for r in rows:
        cases = ",".join(c["case_number"] for c in r["cases"]) or "-"
        click.echo(f"{r['opened_utc'][:19]}  {r['name']}  {r['officer'] or '-':<8} {r['sub_unit'] or '-'}  "
                   f"{r['retention_class']:<6} until {r['retain_until'][:10]}  marks {','.join(r['marks']) or '-'}"
                   f"  case {cases}")
    click.echo(f"{len(rows)} segment(s)", err=True)


@archive_group.command()
@click.argument("device")
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write it to this new file (never overwritten) instead of standard output.")
@click.pass_context
def attestation(ctx: click.Context, device: str, agency: str | None, out: Path | None) -> None:
    """Print the archive's latest log-head attestation of DEVICE.

    The signed message (docs/format.md §12.1) the archive made when it
    recorded the device's seal-log head at a docking: give it to a court
    with the recording, for `bodycam verify --attestation FILE`, which fails
    a recording whose seal log was cut below that head.  Exit 1 if the
    archive has none for the device yet (indexed before revision 0004 and
    not docked since).
    """
    archive = _archive(ctx)
    message = archive.log_head_attestation(device, archive.agency(agency).id)
    if message is None:
        click.echo(f"bodycam: error: no log-head attestation of {device} yet (it has not docked since the "
                   "archive began to sign them)", err=True)
        raise SystemExit(1)
    text = json.dumps(message, indent=1) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        with open(out, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise click.UsageError(f"--out {out}: {exc.strerror or exc}") from None


@archive_group.command()
@click.argument("segments", nargs=-1)
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--by", "who", help="Officer or keeper making the change (recorded; required to change).")
@click.option("--case", "case_number", help="Attach the segments to this case (created if new).")
@click.option("--party", help="当事人 of the case.")
@click.option("--cause", help="案由 of the case.")
@click.option("--act-type", help="Kind of enforcement act (Art. 14): inspection, sampling, seizure, hearing, "
                                 "evidence, service, coercion, penalty, patrol, other.")
@click.option("--sub-unit", help="股室 handling the case.")
@click.option("--years", "retain_years", type=click.IntRange(1, 100),
              help="The case file's retention period in years (only lengthens).")
@click.option("--remove", is_flag=True, help="Take the segments out of --case (their date stays).")
@click.option("--art13", "situation", help="Art. 13 situation (long-term): on-site, coercion, obstruction, "
                                          "objection, mass-incident, removal, non-cooperation, other.")
@click.option("--reviewed", is_flag=True, help="Close the review of a refusal/obstruction mark "
                                               "(with --art13 it becomes long-term).")
@click.option("--history", is_flag=True, help="Show every label change of the (one) segment instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def label(ctx: click.Context, segments, agency, who, case_number, party, cause, act_type, sub_unit, retain_years,
          remove, situation, reviewed, history, as_json) -> None:
    """Label segments after the shift (Art. 11, 20): case, Art. 13 situation, review.

    Labels never touch the sealed bytes.  Retention only lengthens: a case
    gives the case file's period, an Art. 13 situation long-term.  Every
    change is recorded with --by and the time (see --history).
    """
    archive = _archive(ctx)
    if history:
        if len(segments) != 1:
            raise click.UsageError("--history takes exactly one segment")
        events = archive.history(agency, segments[0])
        _emit(as_json, events, "\n".join(f"{e['at_utc'][:19]}  {e['action']:<12} by {e['who']}  "
                                         f"{json.dumps(e['detail'], ensure_ascii=False)}" for e in events))
        return
    if not segments:
        raise click.UsageError("name the segments to label")
    if not who:
        raise click.UsageError("--by is required: every label change records who made it")
    if reviewed:
        n = archive.review(agency, segments, who=who, situation=situation)
        _emit(as_json, {"reviewed": n}, f"reviewed {n} segment(s)")
    elif situation:
        n = archive.classify(agency, segments, situation=situation, who=who)
        _emit(as_json, {"classified": n, "art13": situation}, f"{n} segment(s) kept long-term ({situation})")
    elif case_number and remove:
        n = archive.unlabel(agency, segments, case_number=case_number, who=who)
        _emit(as_json, {"removed": n}, f"{n} segment(s) taken out of {case_number}")
    elif case_number:
        case = archive.label(agency, segments, case_number=case_number, who=who, party=party, cause=cause,
                             act_type=act_type, sub_unit=sub_unit, retain_years=retain_years)
        _emit(as_json, case, f"{len(segments)} segment(s) in case {case_number} "
                             f"(当事人 {case['party'] or '-'}, 案由 {case['cause'] or '-'}, {case['retain_years']} years)")
    else:
        raise click.UsageError("say what to do: --case, --art13, --reviewed or --history")


@archive_group.command()
@click.argument("segments", nargs=-1)
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--case", "case_number", help="Hold the whole case (its segments and documents).")
@click.option("--reason", help="Why (court order, complaint …); required to place a hold.")
@click.option("--by", "who", help="Who places or releases the hold (recorded).")
@click.option("--release", "release_id", type=int, help="Release the hold with this ID.")
@click.option("--list", "list_holds", is_flag=True, help="List active holds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def hold(ctx: click.Context, segments, agency, case_number, reason, who, release_id, list_holds, as_json) -> None:
    """Place, release or list legal holds.  Held footage is never expired."""
    archive = _archive(ctx)
    if list_holds:
        rows = archive.holds(agency)
        _emit(as_json, rows, "\n".join(f"{h['id']:>5}  {'case ' + str(h['case_id']) if h['case_id'] else h['segment_digest']}"
                                       f"  {h['reason']}  by {h['placed_by']} {h['placed_utc'][:19]}" for h in rows)
              or "no active holds")
    elif release_id is not None:
        if not who:
            raise click.UsageError("--by is required")
        archive.release(agency, release_id, who=who)
        _emit(as_json, {"released": release_id}, f"hold {release_id} released")
    else:
        if not who or not reason:
            raise click.UsageError("--by and --reason are required to place a hold")
        ids = archive.hold(agency, reason=reason, who=who, case_number=case_number, segments=segments)
        _emit(as_json, {"holds": ids}, f"placed hold(s) {', '.join(map(str, ids))}")


@archive_group.command()
@click.option("--execute", is_flag=True, help="Really delete (default: a dry run that lists what and why).")
@click.option("--by", "who", default="expiry-job", show_default=True, help="Recorded in each tombstone.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def expire(ctx: click.Context, execute: bool, who: str, as_json: bool) -> None:
    """Delete expired, unheld footage, writing a signed tombstone for each.

    Without --execute, lists what would be deleted and why, and what is past
    its date but kept (legal hold, refusal mark not yet reviewed).
    """
    archive = _archive(ctx)
    if not execute:
        result = archive.expire(who=who, dry_run=True)
    else:
        expired, _ = archive.expiry_candidates()
        progress, task = _progress(len(expired), "expiring")
        with progress:
            result = archive.expire(who=who, dry_run=False, progress=lambda _i: progress.advance(task))
    if as_json:
        _emit(True, result)
        return
    verb = "deleted" if execute else "would delete"
    for item in result["expired"]:
        click.echo(f"{verb}: {item['name']}  ({item['reason']})")
    for item in result["kept"]:
        click.echo(f"kept:   {item['name']}  ({item['reason']})")
    for item in result["failed"]:
        click.echo(f"FAILED: {item['digest']}: {item['error']}")
    click.echo(f"{len(result['deleted']) if execute else len(result['expired'])} {verb}, {len(result['kept'])} kept"
               + ("" if execute else " (dry run; --execute to delete)"), err=True)
    if result["failed"]:
        raise SystemExit(1)


@archive_group.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def scrub(ctx: click.Context, as_json: bool) -> None:
    """Re-read every stored object: its SHA-256 and its lock (Art. 9, 12).  Exit 1 if any is bad."""
    from sqlalchemy import func, select

    from . import index as ix

    archive = _archive(ctx)
    with archive.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(ix.blobs).where(ix.blobs.c.deleted_utc.is_(None))).scalar()
    progress, task = _progress(total, "scrubbing")
    with progress:
        result = archive.scrub(progress=lambda _n: progress.advance(task))
    _emit(as_json, vars(result), f"scrubbed {result.objects} objects, {result.bytes / 1e6:.1f} MB: "
                                 f"{len(result.bad)} bad, {result.orphans} not in the index")
    if not as_json:
        for bad in result.bad:
            click.echo(f"BAD {bad['digest']}: {bad['problem']}")
    if result.bad:
        raise SystemExit(1)


@archive_group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--case", "case_number", required=True, help="The case the documents belong to.")
@click.option("--kind", required=True, help="note, form, service-receipt (送达回证), postal-receipt, e-service, "
                                          "decision, scan, other.")
@click.option("--by", "who", required=True, help="Who hands the documents in (recorded).")
@click.option("--json", "as_json", is_flag=True, help="Print the seals as JSON.")
@click.pass_context
def attach(ctx: click.Context, files, agency, case_number, kind, who, as_json) -> None:
    """Seal written records (Art. 5-6, 14-16) into a case: SHA-256, archive signature, time.

    The documents are stored write-once and kept for the case file's period,
    like the case's footage.
    """
    archive = _archive(ctx)
    seals = [archive.attach(agency, case_number, f, kind=kind, who=who) for f in files]
    _emit(as_json, seals, "\n".join(f"sealed {f.name} into {case_number}" for f in files))


@archive_group.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Store, index, last scrub and alerts (recorders overdue at the dock, bad objects)."""
    archive = _archive(ctx)
    s = archive.status()
    if as_json:
        _emit(True, s)
        return
    idx = s["index"]
    click.echo(f"store    {s['store']['backend']} {s['store'].get('path') or s['store'].get('bucket')}: "
               f"{s['store']['bytes'] / 1e6:.1f} MB")
    click.echo(f"index    {idx['url']} revision {idx['revision']} (head {idx['head']}): {idx['segments']} segments, "
               f"{idx['cases']} cases, {idx['documents']} documents, {idx['active_holds']} holds, "
               f"{idx['review_pending']} awaiting review, {idx['tombstones']} tombstones")
    sc = s["scrub"]
    click.echo("scrub    never" if sc is None else
               f"scrub    {sc['finished_utc'][:19]}: {sc['objects']} objects, {sc['bad']} bad")
    for alert in s["alerts"]:
        click.echo(f"ALERT    {alert_line(alert, archive.watch, s['store'].get('error'))}")
    if not s["alerts"]:
        click.echo("alerts   none")


def alert_line(alert: dict[str, Any], watch, store_error: str | None = None) -> str:
    """An alert of ``Archive.alerts()``/``status()`` in English for the technician's terminal,
    from its fields; its ``message`` is the Chinese text for agency staff (pages, reports,
    ``--json``).  ``watch``: the archive config's [watch] (hours); ``store_error``: the
    status's ``store.error``, what a store-unreachable alert is about.  A kind this does not know
    is shown by its kind and fields, never by the Chinese message."""
    kind = alert.get("kind")
    if kind == "not-docked":
        return (f"recorder {alert['device']} not docked within {watch.dock_within_hours:g} h of its duty end "
                f"(last docked {alert['last_docked_utc']}, due {alert['due_utc']})")
    if kind == "scrub-bad":
        return f"the last scrub found {alert['count']} stored object(s) damaged (bodycam archive scrub)"
    if kind == "scrub-overdue":
        return (f"no scrub of the store for over {watch.scrub_every_hours:g} h "
                f"(last {alert.get('last_scrub_utc') or 'never'})")
    if kind == "custody":
        return (f"recorder {alert['device']}: {alert['count']} segment(s) gone from the recorder without an "
                f"archive receipt, found since {alert['since_utc']} (console misuse timeline; format.md §14)")
    if kind == "store-unreachable":
        return f"the store cannot be reached: {store_error or 'see bodycam archive status --json'}"
    fields = ", ".join(f"{key} {value}" for key, value in alert.items() if key not in ("kind", "message"))
    return f"{kind}: {fields}" if fields else str(kind)


commands = (archive_group,)


from .lawcli import register as _register_lawful_use  # noqa: E402 - audit, accounts, grants, export, disc

_register_lawful_use(archive_group)

from .console.cli import register as _register_console  # noqa: E402 - the station console

_register_console(archive_group)
