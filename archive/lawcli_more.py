"""CLI of people and approvals: ``account`` (on the archive host), ``login``,
``grant``, ``view``, ``export``, ``register``, ``disc``.

Commands that act as a person go through the archive service's people API
with a token (``--url``, ``--ca``, ``--token`` or BODYCAM_ARCHIVE_URL,
BODYCAM_ARCHIVE_CA, BODYCAM_ARCHIVE_TOKEN); only ``account`` and
``register`` read the archive config directly, on the archive host.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import click

from .lawcli import _archive


def remote(fn):
    fn = click.option("--token", envvar="BODYCAM_ARCHIVE_TOKEN", help="Bearer token from `bodycam archive login`.")(fn)
    fn = click.option("--ca", "ca_path", envvar="BODYCAM_ARCHIVE_CA", required=True,
                      type=click.Path(path_type=Path, dir_okay=False, exists=True),
                      help="Agency CA certificate (checks the archive's TLS certificate).")(fn)
    fn = click.option("--url", envvar="BODYCAM_ARCHIVE_URL", required=True,
                      help="The archive's people API, e.g. https://archive:8445.")(fn)
    return fn


def _client(url: str, ca: Path, token: str | None, need_token: bool = True):
    from .people_client import PeopleClient

    if need_token and not token:
        raise click.UsageError("log in first: bodycam archive login … then set BODYCAM_ARCHIVE_TOKEN")
    return PeopleClient(url, ca, token)


def _run(fn):
    from .people_client import PeopleAPIError

    try:
        return fn()
    except PeopleAPIError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(3 if exc.status in (401, 403) else 1) from None


@click.group("account")
def account_group() -> None:
    """Accounts of people (on the archive host): officer, keeper, approver, reviewer, auditor, recipient."""


@account_group.command("add")
@click.argument("username")
@click.option("--name", required=True, help="The person's name (shown in the audit log and watermarks).")
@click.option("--role", required=True, type=click.Choice(["officer", "keeper", "approver", "reviewer", "auditor",
                                                          "recipient"]),
              help="officer: searches and requests access to footage; keeper: labels, holds, exports; "
                   "approver: the agency head who decides requests (TOTP); reviewer: the justice bureau's "
                   "samples (Art. 24); auditor: reads the audit trail; recipient: receives packages.")
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--by", "who", required=True, help="Who creates the account (recorded).")
@click.option("--password", envvar="BODYCAM_NEW_PASSWORD", prompt=True, hide_input=True,
              confirmation_prompt=True, help="At least 10 characters (prompted if not given).")
@click.option("--totp/--no-totp", default=None, help="Second factor (default: on for approvers).")
@click.pass_context
def account_add(ctx, username, name, role, agency, who, password, totp) -> None:
    """Create an account; an approver's TOTP set-up URI is printed once."""
    from .accounts import Accounts

    account, uri = Accounts(_archive(ctx)).add(agency, username, name, role, password, by=who, totp=totp)
    click.echo(f"account {account.username} ({account.role}) of {account.agency}")
    if uri:
        click.echo(f"TOTP (scan once into an authenticator app): {uri}")


@click.command("login")
@click.option("--username", required=True, help="Your account's user name (`bodycam archive account add`).")
@click.option("--password", envvar="BODYCAM_PASSWORD", prompt=True, hide_input=True,
              help="Your password (default $BODYCAM_PASSWORD, else prompted without echo).")
@click.option("--totp", help="The 6-digit code (approvers).")
@remote
def login_command(username, password, totp, url, ca_path, token) -> None:
    """Log in to the archive service; prints a token for BODYCAM_ARCHIVE_TOKEN."""
    answer = _run(lambda: _client(url, ca_path, None, need_token=False).json(
        "POST", "/v1/login", {"username": username, "password": password, "totp": totp}))
    click.echo(answer["token"])
    click.echo(f"logged in as {answer['username']} ({answer['role']}, {answer['agency']})", err=True)


@click.group("grant")
def grant_group() -> None:
    """Requests to view or export, and the agency head's decisions (Art. 19)."""


@grant_group.command("request")
@click.argument("segments", nargs=-1)
@click.option("--case", "case_number", help="The whole case (instead of SEGMENTS).")
@click.option("--for", "grantee", help="Who gets access (default: yourself; keepers may name a recipient).")
@click.option("--action", "actions", multiple=True, required=True, type=click.Choice(["view", "export"]),
              help="view: watermarked playback; export: an evidence package (Art. 18). Repeat for both.")
@click.option("--reason", required=True, help="Why (recorded, shown to the approver).")
@click.option("--hours", required=True, type=click.IntRange(1, 24 * 90), help="How long the grant lasts.")
@remote
def grant_request(segments, case_number, grantee, actions, reason, hours, url, ca_path, token) -> None:
    """Ask for access to segments or a case."""
    g = _run(lambda: _client(url, ca_path, token).json("POST", "/v1/grants", {
        "segments": list(segments), "case": case_number, "grantee": grantee, "actions": list(actions),
        "reason": reason, "hours": hours}))
    click.echo(f"request {g['id']}: {g['status']} ({len(g['segments'])} segments, {', '.join(g['actions'])})")


def _decide(approve: bool):
    @click.argument("grant_id", type=int)
    @click.option("--totp", help="Your current TOTP code.")
    @click.option("--note", default="", help="Note recorded with the decision.")
    @remote
    def decide(grant_id, totp, note, url, ca_path, token) -> None:
        g = _run(lambda: _client(url, ca_path, token).json(
            "POST", f"/v1/grants/{grant_id}/decision", {"approve": approve, "totp": totp, "note": note}))
        click.echo(f"grant {g['id']}: {g['status']}" + (f" until {g['valid_until_utc']}" if approve else ""))
    decide.__doc__ = ("Approve a request (agency head); the archive signs the decision naming you."
                      if approve else "Refuse a request (agency head); signed and recorded.")
    return decide


grant_group.command("approve")(_decide(True))
grant_group.command("refuse")(_decide(False))


@grant_group.command("revoke")
@click.argument("grant_id", type=int)
@click.option("--reason", required=True, help="Why the grant ends now (recorded in the audit trail).")
@remote
def grant_revoke(grant_id, reason, url, ca_path, token) -> None:
    """End an approved grant now."""
    g = _run(lambda: _client(url, ca_path, token).json("POST", f"/v1/grants/{grant_id}/revoke", {"reason": reason}))
    click.echo(f"grant {g['id']}: {g['status']}")


@grant_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the grants as JSON.")
@remote
def grant_list(as_json, url, ca_path, token) -> None:
    """Requests and grants you may see."""
    rows = _run(lambda: _client(url, ca_path, token).json("GET", "/v1/grants"))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for g in rows:
        click.echo(f"{g['id']:>5}  {g['status']:<9} {g['requester']} -> {g['grantee']}  {','.join(g['actions'])}  "
                   f"{g['case_number'] or str(len(g['segments'])) + ' segments'}  until {g['valid_until_utc'] or '-'}"
                   f"  {g['reason']}")


@click.command("view")
@click.argument("segment")
@click.option("--grant", "grant_id", type=int, help="The grant to use (default: any live one).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="File to write (new).")
@remote
def view_command(segment, grant_id, out, url, ca_path, token) -> None:
    """Fetch a viewing copy of a segment, watermarked with your name and the time."""
    if out.exists():
        raise click.UsageError(f"{out} exists")
    data = _run(lambda: _client(url, ca_path, token).call("GET", f"/v1/view/{segment}",
                                                           query={"grant": grant_id} if grant_id else None))
    out.write_bytes(data)
    click.echo(f"wrote {out} ({len(data)} bytes, watermarked)", err=True)


@click.command("export")
@click.option("--case", "case_number", help="Export the case under your live export grant for it.")
@click.option("--grant", "grant_id", type=int, help="The export grant to use (segments or case).")
@click.option("--recipient", help="Recipient named in the package and register (default: the grantee).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="New folder for the package.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Run the package's own verifier on what arrived.")
@remote
def export_command(case_number, grant_id, recipient, out, verify, url, ca_path, token) -> None:
    """Export an evidence package (Art. 17-18) under an approved grant.

    The package holds the sealed originals, the playable media, watermarked
    viewing copies, certificates, the archive's signed attestation, the audit
    extract and chain of custody, a one-file verifier and a report in
    Chinese (HTML and PDF).  The agency keeps a copy and a register entry.
    """
    if out.exists():
        raise click.UsageError(f"{out} exists; give a new folder")
    client = _client(url, ca_path, token)
    if grant_id is None:
        if not case_number:
            raise click.UsageError("give --case or --grant")
        grants = _run(lambda: client.json("GET", "/v1/grants"))
        live = [g for g in grants if g["case_number"] == case_number and g["status"] == "approved"
                and "export" in g["actions"]]
        if not live:
            raise click.UsageError(f"no approved export grant for case {case_number}: request one "
                                   "(bodycam archive grant request --case … --action export)")
        grant_id = live[-1]["id"]
    out.mkdir(parents=True)
    tar_path = out.parent / f".{out.name}.tar"
    try:
        size = _run(lambda: client.download("POST", "/v1/exports", {"grant": grant_id, "recipient": recipient},
                                            tar_path))
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if not member.name.startswith("package"):
                    raise click.ClickException(f"unexpected member {member.name!r} in the package")
                member.name = member.name[len("package"):].lstrip("/") or "."
            tar.extractall(out, filter="data")
    except BaseException:
        if not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        tar_path.unlink(missing_ok=True)
    click.echo(f"package in {out} ({size} bytes)", err=True)
    if verify:
        from .standalone_verifier import verify_package

        result = verify_package(out, ca_path)
        for line in result.failures:
            click.echo(f"FAIL  {line}")
        click.echo("package VERIFIED by its own verifier" if result.passed else "package NOT VERIFIED")
        if not result.passed:
            raise SystemExit(1)


@click.group("review")
def review_group() -> None:
    """Review by the justice bureau (Art. 24): random samples, played back under approval, findings."""


@review_group.command("sample")
@click.option("--size", required=True, type=click.IntRange(1, 200), help="How many segments to draw.")
@click.option("--officer", help="Only this officer's recordings.")
@click.option("--sub-unit", "sub_unit", help="Only this 股室.")
@click.option("--act-type", "act_type", help="Only this kind of enforcement act.")
@click.option("--mark", help="Only segments with this mark (mark, refusal).")
@click.option("--since", help="Opened at or after (date or ISO 8601).")
@click.option("--until", help="Opened before.")
@click.option("--hours", default=72, show_default=True, type=click.IntRange(1, 24 * 90),
              help="How long the view grant for the sample lasts once approved.")
@remote
def review_sample(size, officer, sub_unit, act_type, mark, since, until, hours, url, ca_path, token) -> None:
    """Draw a random sample and file the view request for it (the agency head approves)."""
    criteria = {k: v for k, v in (("officer", officer), ("sub_unit", sub_unit), ("act_type", act_type),
                                  ("mark", mark), ("since", since), ("until", until)) if v}
    g = _run(lambda: _client(url, ca_path, token).json("POST", "/v1/review/sample",
                                                        {"size": size, "criteria": criteria, "hours": hours}))
    click.echo(f"sample request {g['id']}: {len(g['segments'])} segments, {g['status']}")
    for digest in g["segments"]:
        click.echo(f"  {digest}")


@review_group.command("finding")
@click.argument("segment")
@click.option("--result", required=True, type=click.Choice(["conforms", "problem"]),
              help="conforms: the recording meets the rules; problem: it does not (say what in --note).")
@click.option("--note", required=True, help="What was found (recorded).")
@click.option("--grant", "grant_id", type=int, help="The sample's grant.")
@remote
def review_finding(segment, result, note, grant_id, url, ca_path, token) -> None:
    """Record a finding on a segment you viewed under the sample's grant."""
    f = _run(lambda: _client(url, ca_path, token).json("POST", "/v1/review/findings", {
        "segment": segment, "result": result, "note": note, "grant": grant_id}))
    click.echo(f"finding {f['id']}: {f['result']} on {f['segment_digest'][:16]}…")


@click.command("register")
@click.option("--agency", help="Agency ID (required when several share the archive).")
@click.option("--json", "as_json", is_flag=True, help="Print the register as JSON.")
@click.pass_context
def register_command(ctx, agency, as_json) -> None:
    """The register of disclosures (Art. 18): what went to which recipient, with the retained copy."""
    from .package import register

    rows = register(_archive(ctx), agency)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(f"{r['exported_utc'][:19]}  {r['recipient']}  case {r['case_number'] or '-'}  "
                   f"{len(json.loads(r['segments']))} segments  by {r['exported_by']}  grant {r['grant_id']}  "
                   f"kept {r['retained_blob'][:16]}…")


@click.command("disc")
@click.argument("package", type=click.Path(path_type=Path, readable=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="ISO image to write.")
@click.option("--label", default="BODYCAM_EVIDENCE", show_default=True, help="Volume label (A-Z, 0-9, _).")
def disc_command(package, out, label) -> None:
    """Write a package to an ISO 9660 + UDF + Joliet image for long-term media (Art. 13), then
    read it back and verify it."""
    from device.sealing.safeio import check_folder

    from .disc import verify_image, write_image

    check_folder(package, "evidence package")
    if out.exists():
        raise click.UsageError(f"{out} exists")
    written = write_image(package, out, label=label)
    result = verify_image(out)
    click.echo(f"wrote {out}: {written.files} files, {written.bytes} bytes; read back: "
               + ("VERIFIED" if result.passed else "NOT VERIFIED"))
    for line in result.failures:
        click.echo(f"FAIL  {line}")
    if not result.passed:
        raise SystemExit(1)
