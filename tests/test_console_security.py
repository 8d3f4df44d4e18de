"""The station console against a hostile or careless visitor, over HTTP with
aiohttp's client (the console rig of tests/console_rig.py, TLS on loopback):

- every route, given ids, dates and numbers out of any sane range or an
  uploaded file where none is expected, answers a 4xx page, never a 500;
- a failed sign-in says the same whatever was wrong, costs an unknown user
  the same Argon2 work, and only failures count toward the rate limit; the
  refused attempts are in the audit trail;
- signing out (or idling) ends the session on the server: a copied cookie
  no longer works;
- a TOTP code works once, at sign-in or on an approval, in the console and
  the people's API alike; every refusal is audited;
- the console CLI refuses FIFOs, devices and bad TLS pairs naming the option
  and the file, and never hangs;
- an oversized request gets a Chinese 413 page; a browser leaving the dock
  board's event stream is no error.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from archive.console import queries
from archive.console.app import PAGES, SESSION_IDLE_MINUTES

from .console_rig import CASE, PASSWORD, rig_per_index

CSRF_RE = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')
FAILURE_RE = re.compile(r'id="failure">([^<]*)<')
DONE_RE = re.compile(r'id="done">([^<]*)<')
ROLE_OF = {"officer": "zhang.wei", "keeper": "li.na", "approver": "head", "reviewer": "chen.ping",
           "auditor": "auditor"}
CLI_TIMEOUT = 60  # seconds: a hang fails the test instead of the suite


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rig(request, agency, tmp_path_factory):
    """The console over SQLite, then PostgreSQL (integer ranges differ: ids are bounded for both)."""
    yield from rig_per_index(request, agency, tmp_path_factory, "consolesec")


@pytest.fixture(autouse=True)
def fresh_rate_limit(request):
    """Each test starts with no failed sign-ins counted (the limiter keeps real time, per address)."""
    if "rig" in request.fixturenames:
        request.getfixturevalue("rig").running.console.limiter.storage.reset()


class Client:
    """One visitor: aiohttp's client with its own cookie jar and event loop."""

    def __init__(self, rig) -> None:
        self.rig = rig
        self.loop = asyncio.new_event_loop()
        self.session = self.loop.run_until_complete(self._open())
        self.location: str | None = None

    async def _open(self):
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     connector=aiohttp.TCPConnector(ssl=False),
                                     timeout=aiohttp.ClientTimeout(total=CLI_TIMEOUT))

    def request(self, method: str, path: str, **kw) -> tuple[int, str]:
        """(status, body); a redirect is not followed: its target is in :attr:`location`."""
        async def go():
            async with self.session.request(method, self.rig.url + path, allow_redirects=False, **kw) as r:
                self.location = r.headers.get("Location")
                return r.status, await r.text(errors="replace")
        return self.loop.run_until_complete(go())

    def use_cookie(self, value: str) -> None:
        self.session.cookie_jar.update_cookies({"BODYCAM_CONSOLE": value}, response_url=URL(self.rig.url))

    def cookie(self) -> str | None:
        for c in self.session.cookie_jar:
            if c.key == "BODYCAM_CONSOLE":
                return c.value
        return None

    def csrf(self, path: str = "/login") -> str:
        status, text = self.request("GET", path)
        match = CSRF_RE.search(text)
        assert match, f"no CSRF token on {path} ({status})"
        return match.group(1)

    def sign_in(self, username: str, *, password: str = PASSWORD, totp: str | None = None) -> tuple[int, str]:
        form = {"csrf_token": self.csrf(), "username": username, "password": password}
        if totp is not None:
            form["totp"] = totp
        return self.request("POST", "/login", data=form)

    def signed_in_as(self, username: str) -> "Client":
        totp = self.rig.totp(username) if username == "head" else None
        status, text = self.sign_in(username, totp=totp)
        assert status == 303, (status, text[:500])
        return self

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


@pytest.fixture
def clients(rig):
    made: list[Client] = []

    def new() -> Client:
        made.append(Client(rig))
        return made[-1]
    yield new
    for c in made:
        c.close()


def _entries(rig, actor):
    return [e["payload"] for e in queries.audit_entries(rig.law.archive, "test-agency", actor=actor, limit=None,
                                                        newest_first=False)]


def _request_grant(rig, who: str = "li.na") -> int:
    from archive.grants import Grants

    g = Grants(rig.law.archive).request(rig.accounts.get(who), grantee=who, actions=["view"], reason="测试",
                                        hours=2, case_number=CASE)
    return g.id


# -- 1. hostile ids, dates and uploads: 4xx pages, never a 500 -------------------------------------

HOSTILE = ("99999999999999999999999", "9223372036854775808", "2147483648", "-1", "0", "9999-12-31",
           "0001-01-01", "1e309", "²", "２", "25:99", "x" * 3000)
INT_FIELDS = ("hold", "grant", "dock", "bay", "hours", "size", "late_minutes", "gap_minutes")
DATE_FIELDS = ("day", "since", "until")
TIME_FIELDS = ("start", "end")


def _sane() -> dict[str, str]:
    today = dt.date.today().isoformat()
    return {"officer": "010203", "day": today, "start": "23:16", "end": "07:16", "late_minutes": "30",
            "gap_minutes": "20", "since": today, "until": today, "size": "3", "hold": "1", "grant": "1",
            "dock": "0", "bay": "1", "hours": "2", "decision": "approve", "totp": "123456", "note": "说明",
            "reason": "测试", "segment": "a" * 64, "segments": "a" * 64, "result": "conforms", "actions": "view",
            "grantee": "li.na", "case_number": CASE, "party": "某某", "cause": "测试", "username": "nobody",
            "password": "not the password", "actor": "li.na", "case": CASE, "format": "csv", "mark": "refusal"}


def _variants(value: str) -> list[dict[str, str]]:
    """Every field hostile; then only the integer, the date, the time fields hostile, the rest sane."""
    sane = _sane()
    out = [{k: value for k in sane}]
    for kind in (INT_FIELDS, DATE_FIELDS, TIME_FIELDS):
        out.append({**sane, **{k: value for k in kind}})
    return out


def _routes(rig):
    app = rig.running.console.app()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template is None or template.startswith("/static") or route.method == "HEAD":
            continue
        if template in ("/docks/stream", "/logout"):  # an endless stream; signing out (tested below)
            continue
        name = getattr(route.handler, "console_page", None)
        yield route.method, template, name


def _walk_client(rig, clients, page_name, cache):
    if page_name is None:
        key = "public"
    else:
        key = sorted(PAGES[page_name])[0]
    if key not in cache:
        client = clients()
        if key != "public":
            client.signed_in_as(ROLE_OF[key])
        cache[key] = client
    return cache[key]


def test_hostile_ids_dates_and_uploads_on_every_route_answer_4xx_never_500(rig, clients):
    cache: dict[str, Client] = {}
    walked = 0
    for method, template, page_name in _routes(rig):
        client = _walk_client(rig, clients, page_name, cache)
        token = client.csrf()
        for value in HOSTILE + ("1",):
            path = re.sub(r"\{[^}]+\}", urllib.parse.quote(value, safe=""), template)
            for fields in _variants(value):
                if method == "GET":
                    status, text = client.request("GET", path, params=fields)
                else:
                    status, text = client.request("POST", path, data={**fields, "csrf_token": token})
                walked += 1
                assert status < 500 and "Traceback" not in text, (method, path, fields if len(value) < 50 else "…",
                                                                   status, text[:300])
        if method == "POST":  # a file where no console form takes one: 400, nothing done
            data = aiohttp.FormData()
            data.add_field("csrf_token", token)
            for name in ("username", "hold", "reason", "segments"):
                data.add_field(name, b"\x00" * 2048, filename="upload.bin", content_type="application/octet-stream")
            status, text = client.request("POST", re.sub(r"\{[^}]+\}", "1", template), data=data)
            assert status == 400 and "Traceback" not in text, (template, status, text[:300])
            assert "请求无法完成" in text, text[:500]
    assert walked > 1000  # every route, every value, every variant


def test_the_reported_overflows_answer_400_pages_in_chinese(rig, clients):
    head = clients().signed_in_as("head")
    keeper = clients().signed_in_as("li.na")
    auditor = clients().signed_in_as("auditor")
    reviewer = clients().signed_in_as("chen.ping")
    for grant in ("99999999999999999999999", "9223372036854775808", "2147483648"):
        for action, form in (("decision", {"decision": "approve", "totp": "123456"}), ("revoke", {"reason": "x"})):
            status, text = head.request("POST", f"/grants/{grant}/{action}",
                                        data={**form, "csrf_token": head.csrf("/grants")})
            assert status == 400 and "2147483647" in text, (grant, action, status, text[:300])
        status, text = keeper.request("POST", f"/case/{urllib.parse.quote(CASE)}/release",
                                      data={"hold": grant, "csrf_token": keeper.csrf("/grants")})
        assert status == 400 and "2147483647" in text, (status, text[:300])
    status, text = auditor.request("GET", "/misuse", params={"officer": "010203", "day": "9999-12-31",
                                                             "start": "23:16", "end": "07:16"})
    assert status < 500 and "2100-12-31" in text, (status, text[:500])
    status, text = reviewer.request("POST", "/review/sample", data={
        "since": "9999-12-31", "until": "9999-12-31", "size": "3", "csrf_token": reviewer.csrf("/grants")})
    assert status == 400 and "2100-12-31" in text, (status, text[:500])
    anon = clients()
    data = aiohttp.FormData()
    data.add_field("csrf_token", anon.csrf())
    data.add_field("username", b"zhang.wei", filename="u.txt")
    data.add_field("password", PASSWORD)
    status, text = anon.request("POST", "/login", data=data)
    assert status == 400 and "请求无法完成" in text, (status, text[:300])


# -- 2. sign-in: one answer, the same cost, failures only count, refusals audited ------------------

def test_any_failed_sign_in_gets_one_answer_and_is_audited(rig, clients):
    answers = set()
    cases = [("nobody.here", "wrong password!", None), ("zhang.wei", "wrong password!", None),
             ("head", PASSWORD, None), ("head", PASSWORD, ""),
             ("head", PASSWORD, "000000" if rig.totp("head") != "000000" else "111111"),
             ("head", "wrong password!", rig.totp("head"))]
    for username, password, totp in cases:
        status, text = clients().sign_in(username, password=password, totp=totp)
        match = FAILURE_RE.search(text)
        assert status == 401 and match, (username, status, text[:300])
        answers.add(match.group(1))
    assert answers == {"用户名、密码或动态验证码错误。"}
    whys = [e["detail"]["why"] for e in _entries(rig, "head") if e["action"] == "login" and e["outcome"] == "refused"]
    assert whys[-4:] == ["missing TOTP code", "missing TOTP code", "wrong TOTP code", "password"]
    unknown = [e for e in _entries(rig, "nobody.here") if e["action"] == "login"]
    assert [e["detail"]["why"] for e in unknown] == ["unknown user"]


def test_an_unknown_user_costs_the_same_argon2_verification_as_a_real_one(rig, monkeypatch):
    from argon2 import PasswordHasher

    from archive import accounts as acc_module
    from archive.accounts import LoginFailed

    calls = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash, password):  # noqa: A002 - argon2-cffi's own parameter name
            calls.append(hash.split("$")[1])
            return super().verify(hash, password)

    monkeypatch.setattr(acc_module, "_hasher", CountingHasher())
    messages = set()
    for username in ("zhang.wei", "no.such.user", "another.stranger"):
        with pytest.raises(LoginFailed) as failed:
            rig.accounts.login(username, "wrong password!")
        messages.add(str(failed.value))
    assert calls == ["argon2id"] * 3  # one real Argon2id verification each, known user or not
    assert len(messages) == 1  # and the same answer (the people's API shows it)


def test_only_failed_sign_ins_count_toward_the_rate_limit_and_refusals_are_audited(rig, clients):
    rig.accounts.add(None, "wu.gang", "吴刚", "officer", PASSWORD, by="admin")
    for _ in range(8):  # more good sign-ins in a minute than the limit allows failures
        status, text = clients().sign_in("wu.gang")
        assert status == 303, (status, text[:300])
    visitor = clients()
    for _ in range(5):
        assert visitor.sign_in("wu.gang", password="wrong password!")[0] == 401
    status, text = visitor.sign_in("wu.gang")  # right password, but five failures in the minute
    assert status == 429 and "登录尝试过多" in text
    trail = [(e["outcome"], e["detail"].get("why")) for e in _entries(rig, "wu.gang") if e["action"] == "login"]
    assert trail == [("ok", None)] * 8 + [("refused", "password")] * 5 + [("refused", "rate limit")]


# -- 3. sign-out and idling end the session on the server ------------------------------------------

def test_a_cookie_copied_before_sign_out_no_longer_works(rig, clients):
    officer = clients().signed_in_as("zhang.wei")
    assert officer.request("GET", "/search")[0] == 200
    stolen = officer.cookie()
    assert stolen
    status, _text = officer.request("POST", "/logout", data={"csrf_token": officer.csrf("/search")})
    assert status == 303
    thief = clients()
    thief.use_cookie(stolen)
    status, _text = thief.request("GET", "/search")
    assert status == 303 and thief.location.startswith("/login"), (status, thief.location)
    thief.use_cookie(stolen)  # the refusal dropped it: try again, with a form
    status, text = thief.request("POST", "/grants", data={"reason": "x"})
    assert status == 401 and "请重新登录" in text


def test_a_session_idle_longer_than_the_limit_ends(rig, clients):
    officer = clients().signed_in_as("zhang.wei")
    rig.law.clock.advance(SESSION_IDLE_MINUTES * 60 - 60)
    assert officer.request("GET", "/search")[0] == 200  # still within the idle limit: refreshed
    rig.law.clock.advance(SESSION_IDLE_MINUTES * 60 - 60)
    assert officer.request("GET", "/search")[0] == 200
    stolen = officer.cookie()
    rig.law.clock.advance(SESSION_IDLE_MINUTES * 60 + 1)
    assert officer.request("GET", "/search")[0] == 303  # idle too long: back to the sign-in page
    assert officer.location.startswith("/login")
    thief = clients()
    thief.use_cookie(stolen)
    assert thief.request("GET", "/search")[0] == 303


# -- 4, 5. a TOTP code works once; every refusal is audited ---------------------------------------

def test_one_totp_code_approves_one_request_only_and_refusals_are_audited(rig, clients):
    from archive.accounts import LoginFailed

    head = clients().signed_in_as("head")
    first, second, third = _request_grant(rig), _request_grant(rig), _request_grant(rig)
    code = rig.totp("head")
    status, text = head.request("POST", f"/grants/{first}/decision", data={
        "decision": "approve", "totp": code, "csrf_token": head.csrf("/grants")})
    assert status == 303, text[:500]  # then the grants page, with what was done
    status, text = head.request("GET", "/grants")
    assert status == 200 and f"{first}" in DONE_RE.search(text).group(1), text[:500]
    status, text = head.request("POST", f"/grants/{second}/decision", data={  # the same code, same 30 s
        "decision": "approve", "totp": code, "csrf_token": head.csrf("/grants")})
    assert status == 401 and "动态验证码错误" in FAILURE_RE.search(text).group(1)
    for wrong in ("", "000000" if code != "000000" else "111111"):
        status, _text = head.request("POST", f"/grants/{third}/decision", data={
            "decision": "refuse", "totp": wrong, "csrf_token": head.csrf("/grants")})
        assert status in (400, 401)
    refusals = [(e["action"], e["detail"].get("grant"), e["detail"]["why"]) for e in _entries(rig, "head")
                if e["outcome"] == "refused" and e["action"] in ("approve", "refuse")]
    assert refusals[-3:] == [("approve", second, "TOTP code already used"), ("refuse", third, "missing TOTP code"),
                             ("refuse", third, "wrong TOTP code")]
    # the people's API signs in with the same check: the code the console used is spent there too
    with pytest.raises(LoginFailed):
        rig.accounts.login("head", PASSWORD, code)
    fresh = rig.totp("head")
    rig.accounts.login("head", PASSWORD, fresh)
    status, text = clients().sign_in("head", totp=fresh)  # and a code spent by the API fails in the console
    assert status == 401


def test_a_code_earlier_than_the_last_used_is_refused(rig):
    import pyotp

    from archive.accounts import LoginFailed

    secret = rig.accounts.totp_secret("head")
    later = rig.totp("head")
    earlier = pyotp.TOTP(secret).at(rig.law.clock.utc_now() - dt.timedelta(seconds=30))  # still in the ±1 window
    rig.accounts.login("head", PASSWORD, later)
    with pytest.raises(LoginFailed):
        rig.accounts.login("head", PASSWORD, earlier)


# -- 7. oversized requests ------------------------------------------------------------------------

def test_an_oversized_body_gets_a_chinese_413_page_and_long_urls_are_handled(rig, clients):
    keeper = clients().signed_in_as("li.na")
    status, text = keeper.request("POST", "/grants", data={"reason": "x" * (3 << 20), "csrf_token": keeper.csrf()})
    assert status == 413 and "请求过大" in text and "Maximum request body size" not in text, text[:300]
    anon = clients()
    status, text = anon.request("POST", "/login", data={"username": "x" * (3 << 20)})
    assert status == 413 and "请求过大" in text
    status, text = keeper.request("GET", "/search", params={"party": "某" * 1200})  # a 10.8 KB request line
    assert status == 200 and "Got more than" not in text, (status, text[:200])
    status, text = keeper.request("GET", "/search", params={"party": "某" * 2000})  # 18 KB: aiohttp refuses it
    assert status == 400  # below the application: aiohttp's own plain answer (see the report), never a hang


# -- 8. a browser leaving the dock board --------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.ended = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if "browser went away" in record.getMessage():
            self.ended.set()


def test_leaving_the_dock_board_ends_its_stream_without_an_error(rig, clients):
    keeper = clients().signed_in_as("li.na")
    records = _Records()
    watched = [logging.getLogger("aiohttp.server"), logging.getLogger("archive.console.routes")]
    old_levels = [w.level for w in watched]
    for w in watched:
        w.addHandler(records)
        w.setLevel(logging.DEBUG)
    try:
        async def leave():
            async with keeper.session.get(rig.url + "/docks/stream") as r:
                assert r.status == 200
                assert b"event: bays" in await r.content.readany()  # the first board
        keeper.loop.run_until_complete(leave())  # and the browser goes away
        for n in range(40):  # the board changes until the stream notices (each change is a write)
            rig.board.write_text('{"bays": {"%d": {"device": null}}}' % n)
            if records.ended.wait(0.5):
                break
        assert records.ended.is_set(), [r.getMessage() for r in records.records]
        errors = [r for r in records.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
    finally:
        for w, level in zip(watched, old_levels):
            w.removeHandler(records)
            w.setLevel(level)


# -- 6. the console CLI: FIFOs, devices and bad TLS pairs named, never a hang ----------------------

def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    bodycam = Path(sys.executable).with_name("bodycam")
    return subprocess.run([str(bodycam), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from archive.console.tls import make_web_certificate

    root = tmp_path_factory.mktemp("cli-files")
    fifo = root / "fifo"
    os.mkfifo(fifo)
    cert, key = make_web_certificate(root / "a", ["127.0.0.1"])
    _other_cert, other_key = make_web_certificate(root / "b", ["127.0.0.1"])
    junk = root / "junk.pem"
    junk.write_text("not a certificate\n")
    session_key = root / "session.key"
    session_key.write_text(base64.b64encode(os.urandom(32)).decode())
    return {"fifo": fifo, "cert": cert, "key": key, "other_key": other_key, "junk": junk, "session_key": session_key}


def test_the_console_cli_names_every_unusable_file_and_never_hangs(files, agency, tmp_path):
    from .lawful_rig import make_archive

    law = make_archive(agency, tmp_path / "law")
    law.close()
    config = str(law.config_path)
    fifo = str(files["fifo"])
    cases = [
        (["archive", "--config", fifo, "console"], {}, [fifo, "FIFO"]),
        (["archive", "--config", "/dev/zero", "console"], {}, ["/dev/zero", "character device"]),
        (["archive", "console"], {"BODYCAM_ARCHIVE_CONFIG": fifo}, [fifo, "FIFO"]),
        (["archive", "--config", config, "console", "--tls-certificate", fifo, "--tls-key", str(files["key"])], {},
         ["--tls-certificate", fifo, "FIFO"]),
        (["archive", "--config", config, "console", "--tls-certificate", str(files["cert"]), "--tls-key", fifo], {},
         ["--tls-key", fifo, "FIFO"]),
        (["archive", "--config", config, "console", "--session-key", fifo], {}, ["--session-key", fifo, "FIFO"]),
        (["archive", "--config", config, "console", "--session-key", "/dev/zero"], {},
         ["--session-key", "/dev/zero", "character device"]),
        (["archive", "--config", config, "console", "--dock-status", fifo], {}, ["--dock-status", fifo]),
        (["archive", "--config", config, "console", "--tls-certificate", str(files["junk"]),
          "--tls-key", str(files["key"])], {}, ["--tls-certificate", str(files["junk"]), "not a PEM certificate"]),
        (["archive", "--config", config, "console", "--tls-certificate", str(files["cert"]),
          "--tls-key", str(files["junk"])], {}, ["--tls-key", str(files["junk"]), "not a PEM private key"]),
        (["archive", "--config", config, "console", "--tls-certificate", str(files["cert"]),
          "--tls-key", str(files["other_key"])], {}, ["--tls-key", str(files["other_key"]), "is not the key of"]),
        (["archive", "--config", config, "console", "--listen", "999.1.1.1"], {}, ["--listen", "999.1.1.1"]),
        (["archive", "--config", config, "console", "--listen", ""], {}, ["--listen", "empty"]),
        (["archive", "--config", config, "console", "--listen", "192.0.2.1", "--port", "0"], {},
         ["--listen 192.0.2.1", "cannot listen"]),
    ]
    for args, env, named in cases:
        out = _cli(*args, env=env)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert all(n in out.stderr for n in named), (args, out.stderr)
        assert "Traceback" not in out.stderr and "PEM lib" not in out.stderr and "_ssl.c" not in out.stderr


def test_a_dock_board_that_becomes_a_fifo_is_reported_not_read(rig, clients, tmp_path):
    keeper = clients().signed_in_as("li.na")
    console = rig.running.console
    fifo = tmp_path / "status.json"
    os.mkfifo(fifo)
    saved = list(console.dock_status)
    console.dock_status[:] = [fifo]
    try:
        status, text = keeper.request("GET", "/docks")
    finally:
        console.dock_status[:] = saved
    assert status == 200 and "FIFO" in text and str(fifo) in text, text[:500]



def test_the_console_cli_starts_with_good_files(files, agency, tmp_path):
    import selectors

    from .lawful_rig import make_archive

    law = make_archive(agency, tmp_path / "law")
    law.close()
    (tmp_path / "dock").mkdir()
    bodycam = Path(sys.executable).with_name("bodycam")
    proc = subprocess.Popen([str(bodycam), "archive", "--config", str(law.config_path), "console", "--port", "0",
                             "--tls-certificate", str(files["cert"]), "--tls-key", str(files["key"]),
                             "--session-key", str(files["session_key"]), "--dock-status", str(tmp_path / "dock")],
                            stderr=subprocess.PIPE, text=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        assert sel.select(CLI_TIMEOUT), "the console printed nothing"
        line = proc.stderr.readline()
        assert re.match(r"station console on https://127\.0\.0\.1:\d+/", line), line
    finally:
        proc.terminate()
        proc.wait(CLI_TIMEOUT)
