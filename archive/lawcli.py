"""``bodycam archive audit | account | grant | export | disc``: lawful use
(Art. 13, 17-19, 24, 25).  Added to the ``archive`` group by :func:`register`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _archive(ctx: click.Context):
    from .cli import _archive as archive_of

    return archive_of(ctx)


@click.group("audit")
def audit_group() -> None:
    """The audit trail: verify offline, export (JSON lines, CSV, PDF), time-stamp its head.

    Every search, view, export, label, retention change, hold, expiry,
    grant and refusal is an entry signed by the archive and chained to the
    one before; an RFC 3161 authority time-stamps the head on a schedule.
    """


@audit_group.command("verify")
@click.option("--log", "log_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A bodycam-audit/1 export to check offline (default: the archive's own index, via --config).")
@click.option("--ca", "ca_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Agency CA certificate (required with --log).")
@click.option("--agency", help="Agency ID (default: every agency of the archive).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def audit_verify(ctx: click.Context, log_path: Path | None, ca_path: Path | None, agency: str | None,
                 as_json: bool) -> None:
    """Check signatures, chain, time-stamps and the signed head; exit 1 naming the first bad entries."""
    from cryptography import x509

    from .standalone_verifier import Result, verify_audit_lines

    result = Result()
    if log_path is not None:
        if ca_path is None:
            raise click.UsageError("--log needs --ca (the agency CA certificate)")
        for given in (log_path, ca_path):
            if not given.is_file():
                raise click.UsageError(f"{given}: not a regular file")
        try:
            ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
            lines = [line for line in log_path.read_text("utf-8").splitlines() if line.strip()]
            verify_audit_lines(lines, ca, result)
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            result.fail(f"{log_path}: {exc}")
    else:
        from .audit import audit_of
        from .tsa import check_stamp

        archive = _archive(ctx)
        log = audit_of(archive)
        roots = []
        tsa = archive.config.lawful_use.tsa
        if tsa is not None:
            roots = [x509.load_pem_x509_certificate(p.read_bytes()) for p in tsa.certificates]
        for a in ([archive.agency(agency)] if agency else archive.agencies.values()):
            verify_audit_lines(log.export_jsonl(a.id).decode().splitlines(), a.ca_cert, result)
            payloads = {e["seq"]: e["payload"].encode() for e in log.entries(a.id)}
            import base64

            for s in log.stamps(a.id):
                try:
                    when = check_stamp(base64.b64decode(s["token"]), payloads[s["seq"]], roots)
                    result.ok(f"{a.id}: TSA signature on the stamp of #{s['seq']} verifies ({when})")
                except (ValueError, KeyError) as exc:
                    result.fail(f"{a.id}: time-stamp of audit entry #{s['seq']}: {exc}")
    if as_json:
        click.echo(json.dumps({"verified": result.passed, "checked": result.checked,
                               "failures": result.failures}, ensure_ascii=False, indent=2))
    else:
        for line in result.checked:
            click.echo(f"ok    {line}")
        for line in result.failures:
            click.echo(f"FAIL  {line}")
        click.echo("VERIFIED" if result.passed else "NOT VERIFIED")
    if not result.passed:
        raise SystemExit(1)


@audit_group.command("export")
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--case", "case_number", help="Only the entries of this case.")
@click.option("--actor", help="Only the entries of this person (account name).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "pdf"]), default="jsonl", show_default=True,
              help="jsonl: verifiable (bodycam-audit/1); csv: for spreadsheets; pdf: readable, Chinese.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="File to write (new).")
@click.pass_context
def audit_export(ctx: click.Context, agency, case_number, actor, fmt, out: Path) -> None:
    """Export the audit log, or a case's or a person's extract (the export is itself audited)."""
    from .audit import audit_of

    archive = _archive(ctx)
    log = audit_of(archive)
    if out.exists():
        raise click.UsageError(f"{out} exists; choose a new file")
    data = {"jsonl": log.export_jsonl, "csv": log.export_csv, "pdf": log.export_pdf}[fmt](
        agency, case=case_number, actor=actor)
    out.write_bytes(data)
    log.record(agency, "audit-export", case=case_number, detail={"format": fmt, "actor": actor, "bytes": len(data)})
    click.echo(f"wrote {out} ({len(data)} bytes)", err=True)


@audit_group.command("stamp")
@click.option("--agency", help="Agency ID (default: every agency).")
@click.option("--force", is_flag=True, help="Stamp now even if not due.")
@click.pass_context
def audit_stamp(ctx: click.Context, agency, force: bool) -> None:
    """Time-stamp each agency's audit head when due, and every device's new
    seal-log head, at the TSA of [lawful_use.tsa] (RFC 3161)."""
    from .audit import audit_of
    from .provenance import stamp_seal_log_heads

    archive = _archive(ctx)
    for a in ([archive.agency(agency)] if agency else archive.agencies.values()):
        row = audit_of(archive).stamp(a.id, force=force)
        click.echo(f"{a.id}: audit " + (f"head #{row['seq']} stamped at {row['stamped_utc']}" if row else "not due"))
    for row in stamp_seal_log_heads(archive):
        click.echo(f"seal log of {row['device']}: head #{row['seq']} stamped at {row['stamped_utc']}")


def register(group: click.Group) -> None:
    from . import lawcli_more as more

    group.add_command(audit_group)
    for command in (more.account_group, more.login_command, more.grant_group, more.view_command,
                    more.export_command, more.register_command, more.disc_command, more.review_group):
        group.add_command(command)
