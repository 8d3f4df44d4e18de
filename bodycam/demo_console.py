"""The demo's station console: an account per role on the demo archive, the
console on a free loopback port (HTTPS with a self-signed ECDSA web
certificate), its address and the logins printed; kept running until Ctrl-C
with ``bodycam demo --serve``.
"""

from __future__ import annotations

import json
import secrets
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

DEMO_PEOPLE = (("zhang.wei", "张伟", "officer"), ("li.na", "李娜", "keeper"), ("wang.ju", "王局长", "approver"),
               ("chen.ping", "陈平", "reviewer"), ("sun.shen", "孙审计", "auditor"))


def start_demo_console(workdir: Path, echo: Callable[[str], None], *, serve: bool,
                       wait: Callable[[], None] | None = None) -> str:
    """Start the console over ``workdir``'s archive; print its address and logins.

    With ``serve`` it runs until SIGINT/SIGTERM (or until ``wait`` returns,
    for tests); otherwise it stops at once.  Returns the console's URL.
    """
    import pyotp

    from archive.accounts import Accounts
    from archive.config import load_archive_config
    from archive.console.app import RunningConsole
    from archive.console.tls import make_web_certificate
    from archive.service import Archive

    config_path = workdir / "archive" / "archive.toml"
    text = config_path.read_text()
    if "[lawful_use" not in text:  # viewing decrypts inside the archive with the archive identity
        from device.sealing import pki

        identity = workdir / "keys" / "archive" / f"{pki.ROLE_ARCHIVE_RECIPIENT}.key"  # enrol_demo's
        agency = load_archive_config(config_path).agencies[0].id
        config_path.write_text(text + f'\n[lawful_use.recipient_keys]\n{json.dumps(agency)} = {json.dumps(str(identity))}\n')
    archive = Archive(load_archive_config(config_path))
    running = None
    try:
        accounts = Accounts(archive)
        password = f"demo-{secrets.token_hex(4)}"
        logins = []
        for username, name, role in DEMO_PEOPLE:
            _account, uri = accounts.add(None, username, name, role, password, by="demo")
            logins.append((username, name, role, accounts.totp_secret(username) if uri else None))
        tls = make_web_certificate(workdir / "keys" / "console", ["127.0.0.1", "localhost"])
        running = RunningConsole(archive, dock_status=[workdir / "dock" / "state"], tls=tls).start()
        echo(f"console      {running.url}/  (self-signed certificate {tls[0]}; 中文, English at /lang/en)")
        for username, name, role, secret in logins:
            extra = ""
            if secret:
                extra = (f"  TOTP secret {secret} (code now {pyotp.TOTP(secret).now()}; "
                         f"{shlex.quote(sys.executable)} -c \"import pyotp; print(pyotp.TOTP('{secret}').now())\")")
            echo(f"  login      {role:<9} {username:<10} password {password}{extra}")
        shift = _first_shift(archive)
        if shift:
            echo(f"  try        misuse timeline (as sun.shen): {running.url}/misuse?{shift}")
        if not serve:
            echo("  (the console stops when the demo ends: run `bodycam demo --serve` to keep it up)")
        if serve:
            echo("serving the console until Ctrl-C")
            if wait is not None:
                wait()
            else:
                stop = threading.Event()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, lambda *_: stop.set())
                stop.wait()
        return running.url
    finally:
        if running is not None:
            running.stop()
        archive.close()


def _first_shift(archive) -> str | None:
    """The query string of the misuse timeline for the demo officer's shift:
    from 10 minutes before their first footage, eight hours (Beijing time)."""
    import datetime as dt
    from urllib.parse import urlencode

    from sqlalchemy import func, select

    from archive import index as ix
    from archive.console.oversight import SHIFT_ZONE
    from bodycam.demo import DEMO_OFFICER

    s = ix.segments
    with archive.engine.connect() as conn:
        first = conn.execute(select(func.min(s.c.opened_utc)).where(s.c.officer == DEMO_OFFICER)).scalar()
    if first is None:
        return None
    start = (dt.datetime.fromisoformat(first.replace("Z", "+00:00")).astimezone(SHIFT_ZONE)
             - dt.timedelta(minutes=10))
    return urlencode({"officer": DEMO_OFFICER, "day": start.date().isoformat(), "start": start.strftime("%H:%M"),
                      "end": (start + dt.timedelta(hours=8)).strftime("%H:%M")})
