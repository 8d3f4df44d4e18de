"""The end of ``bodycam demo``: an approved export of one case (Art. 17-19),
checked by the package's own verifier in a separate Python process."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pyotp

from .accounts import Accounts
from .grants import Grants
from .package import export_package


def approved_export(archive, case_number: str, out: Path, echo: Callable[[str], None]) -> bool:
    """Keeper requests, agency head approves (TOTP), keeper exports; then
    ``python3 verify_package.py`` runs on the package.  Returns whether it verified."""
    accounts = Accounts(archive)
    password = secrets.token_urlsafe(12)  # demo accounts: nobody logs in with them later
    keeper, _ = accounts.add(None, "keeper", "李娜", "keeper", password, by="demo")
    head, _ = accounts.add(None, "head", "王局长", "approver", password, by="demo")
    grants = Grants(archive)
    g = grants.request(keeper, grantee="keeper", actions=["export"], reason="行政复议机关调取证据", hours=24,
                       case_number=case_number)
    code = pyotp.TOTP(accounts.totp_secret("head")).at(archive.now())
    g = grants.decide(head, g.id, approve=True, totp=code, note="同意提供")
    echo(f"approved     request {g.id} (export case {case_number}) by agency head {head.name}, "
         f"signed by the archive, valid until {g.valid_until_utc[:19]}")
    result = export_package(archive, keeper, g.id, out, recipient="顺城区行政复议机关")
    echo(f"exported     evidence package {out}: {result.segments} segment(s), {result.bytes / 1e6:.1f} MB, "
         f"{result.seconds:.1f} s; report {out / 'report' / 'report.pdf'}; kept copy registered (Art. 18)")
    done = subprocess.run([sys.executable, "-I", str(out / "verify_package.py"), str(out)],
                          capture_output=True, text=True)
    verdict = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()
    echo(f"package      its own verifier says: {verdict}")
    echo(f"try          python3 {out / 'verify_package.py'} {out}")
    if done.returncode != 0:
        from .service import ArchiveError

        raise ArchiveError(f"the demo's evidence package did not verify:\n{done.stdout}{done.stderr}")
    return True
