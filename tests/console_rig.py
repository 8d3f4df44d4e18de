"""The station console for the browser tests: an archive with real H.264
footage (tests/lawful_rig.py), an account per role, the console served over
TLS on a free loopback port, and Debian's chromium driven by Playwright.

Screenshots go to ``build/screenshots/`` (git-ignored), one per page.
Under ``CI=true`` a missing chromium or Playwright fails the tests.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from archive.accounts import Accounts

from .archive_rig import unavailable
from .lawful_rig import LawRig, make_archive, next_totp

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
PASSWORD = "correct horse battery"
CASE = "顺市监罚〔2026〕33号"
CJK = re.compile(r"[\u4e00-\u9fff]")
PEOPLE = (("zhang.wei", "张伟", "officer"), ("li.na", "李娜", "keeper"), ("head", "王局长", "approver"),
          ("chen.ping", "陈平", "reviewer"), ("auditor", "审计员", "auditor"))


@dataclass
class ConsoleRig:
    law: LawRig
    accounts: Accounts
    url: str
    running: object
    board: Path

    def totp(self, username: str) -> str:
        """A fresh code: the clock moves to the next 30-second step (a code works once)."""
        return next_totp(self.law.clock, self.accounts.totp_secret(username))


def make_console(agency, root: Path, *, index: str = "") -> ConsoleRig:
    """The console over an archive of real footage; ``index`` as for make_archive."""
    from archive.console.app import RunningConsole
    from archive.console.tls import make_web_certificate

    law = make_archive(agency, root / "law", index=index)
    accounts = Accounts(law.archive)
    for username, name, role in PEOPLE:
        accounts.add(None, username, name, role, PASSWORD, by="admin")
    law.archive.label(None, law.names[:2], case_number=CASE, party="某某商店", cause="销售过期食品",
                      act_type="inspection", who="li.na")
    board = root / "dock" / "state" / "status.json"
    board.parent.mkdir(parents=True)
    tls = make_web_certificate(root / "web-tls", ["127.0.0.1", "localhost"])
    running = RunningConsole(law.archive, dock_status=[board.parent], tls=tls).start()
    return ConsoleRig(law, accounts, running.url, running, board)


def rig_per_index(request, agency, tmp_path_factory, database: str):
    """The body of a module fixture parametrised ``["sqlite", "postgresql"]``: the console
    over an index of that kind (PostgreSQL: a new ``database`` in the module's cluster),
    stopped when the module ends."""
    from .archive_rig import postgres_index

    index = postgres_index(request.getfixturevalue("postgres"), database) if request.param == "postgresql" else ""
    rig = make_console(agency, tmp_path_factory.mktemp(database), index=index)
    try:
        yield rig
    finally:
        rig.running.stop()
        rig.law.close()


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        unavailable("Debian's chromium is not installed (apt-get install chromium fonts-noto-cjk)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def sign_in(page, rig: ConsoleRig, username: str, *, totp: bool = False) -> None:
    page.goto(f"{rig.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    if totp:
        page.fill("input[name=totp]", rig.totp(username))
    page.click("#sign-in")
    page.wait_for_load_state()
    assert "/login" not in page.url, page.inner_text("body")


def screenshot(page, name: str) -> Path:
    """Save the page as build/screenshots/<name>.png and check it is Chinese and not blank."""
    from PIL import Image, ImageStat

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    text = page.inner_text("body")
    cjk = len(CJK.findall(text))
    assert cjk >= 20, f"{name}: page text is not Chinese ({cjk} CJK characters): {text[:300]!r}"
    with Image.open(path) as img:
        stat = ImageStat.Stat(img.convert("L"))
        assert stat.stddev[0] > 10, f"{name}: screenshot looks blank (stddev {stat.stddev[0]:.1f})"
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50, f"{name}: screenshot has only {len(colours)} colours"
    return path


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
