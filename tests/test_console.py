"""The station console in a real browser (Debian's chromium through Playwright):
each page as its role, the result checked in the page and in the audit
trail; no playback without a grant; an approval lets a reviewer play real
H.264 footage; dock progress updates live while a recorder docks; every
page's screenshot is Chinese and not blank."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading

import pytest

from archive.audit import audit_of
from archive.console import queries

from .console_rig import CASE, PASSWORD, launch_chromium, rig_per_index, screenshot, sign_in

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rig(request, agency, tmp_path_factory):
    """The console over an archive whose index is SQLite, then PostgreSQL: every page test runs on both."""
    yield from rig_per_index(request, agency, tmp_path_factory, "console")


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        from .archive_rig import unavailable
        unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(ignore_https_errors=True, locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def _entries(rig, **kw):
    return [e["payload"] for e in queries.audit_entries(rig.law.archive, "test-agency", limit=None,
                                                        newest_first=False, **kw)]


def _entries_of(archive, agency, actor):
    return [e["payload"] for e in queries.audit_entries(archive, agency, actor=actor, limit=None, newest_first=False)]


def _digests(rig):
    rows = rig.law.archive.search(None, limit=10)
    return {r["name"]: r["segment_digest"] for r in rows}


def test_sign_in_is_chinese_by_default_switches_to_english_and_limits_attempts(rig, page):
    rig.accounts.add(None, "zhao.lei", "赵磊", "officer", PASSWORD, by="admin")
    page.goto(f"{rig.url}/login")
    assert "登录" in page.inner_text("h1")
    screenshot(page, "01-login")
    page.goto(f"{rig.url}/lang/en?next=/login")
    assert page.inner_text("h1") == "Sign in"
    page.goto(f"{rig.url}/lang/zh_CN?next=/login")
    for _ in range(5):
        page.fill("input[name=username]", "zhao.lei")
        page.fill("input[name=password]", "wrong password!")
        page.click("#sign-in")
        assert "用户名、密码或动态验证码错误" in page.inner_text("#failure")
    # the sixth attempt in the minute is refused even with the right password
    page.fill("input[name=username]", "zhao.lei")
    page.fill("input[name=password]", PASSWORD)
    page.click("#sign-in")
    assert "登录尝试过多" in page.inner_text("#failure")
    assert "/login" in page.url
    refused = [e for e in _entries(rig, actor="zhao.lei") if e["action"] == "login"]
    assert len(refused) == 6 and all(e["outcome"] == "refused" for e in refused)
    assert [e["detail"]["why"] for e in refused] == ["password"] * 5 + ["rate limit"]


def test_a_form_without_its_csrf_token_changes_nothing(rig, page):
    sign_in(page, rig, "li.na")
    before = len(rig.law.archive.holds(None))
    response = page.request.post(f"{rig.url}/case/{CASE}/hold", form={"reason": "无令牌"})
    assert response.status == 400
    assert len(rig.law.archive.holds(None)) == before
    response = page.request.post(f"{rig.url}/grants", form={"case_number": CASE, "actions": "view",
                                                             "reason": "x", "hours": "2"})
    assert response.status == 400 and "Traceback" not in response.text()


def test_search_by_art20_fields_shows_marks_duration_and_retention(rig, page):
    sign_in(page, rig, "zhang.wei")
    page.goto(f"{rig.url}/search")
    page.fill("input[name=party]", "商店")
    page.fill("input[name=since]", (dt.date.today() - dt.timedelta(days=1)).isoformat())
    page.click("#search")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 2, page.inner_text("main")
    text = page.inner_text("#results")
    assert "拒绝配合标记" in text and "案卷" in text and CASE in text
    assert "审批后可见" in text  # no picture without a grant
    screenshot(page, "03-search")
    page.goto(f"{rig.url}/search?mark=refusal")
    assert page.locator("#results tbody tr").count() == 1
    page.goto(f"{rig.url}/search?since=not-a-date")
    assert page.locator("#search-error").count() == 1 and "Traceback" not in page.content()
    searches = [e for e in _entries(rig, actor="zhang.wei") if e["action"] == "search"]
    assert len(searches) >= 3  # the empty form, the party search, the mark search
    assert [len(e["segments"]) for e in searches[-2:]] == [2, 1]  # an invalid date never reaches the archive


def test_a_keeper_without_a_grant_cannot_play_footage(rig, page):
    digest = _digests(rig)[rig.law.names[0]]
    sign_in(page, rig, "li.na")
    page.goto(f"{rig.url}/play/{digest}")
    assert page.locator("video").count() == 0
    assert "无权操作" in page.inner_text("h1")
    media = page.request.get(f"{rig.url}/media/{digest}")
    assert media.status == 403 and media.headers["content-type"].startswith("text/html")
    assert b"ftyp" not in media.body()
    screenshot(page, "05-play-refused")
    denied = [e for e in _entries(rig, actor="li.na", segment=digest) if e["outcome"] == "denied"]
    assert len(denied) >= 2 and all(e["detail"]["wanted"] == "view" for e in denied)


def test_an_approval_lets_a_reviewer_play_and_the_video_advances(rig, browser, page):
    name = rig.law.names[1]  # the segment with notify, mark and refusal events
    digest = _digests(rig)[name]
    sign_in(page, rig, "chen.ping")
    page.goto(f"{rig.url}/grants?segment={digest}")
    page.check("input[name=actions][value=view]")
    page.fill("textarea[name=reason]", "年度执法案卷评查（第二十四条）")
    page.fill("input[name=hours]", "4")
    page.click("#file-request")
    assert "已提交" in page.inner_text("#done")
    grant_id = int(page.locator("#grants tbody tr").first.get_attribute("data-grant"))
    assert "待审批" in page.inner_text(f"tr[data-grant='{grant_id}'] .state")
    page.goto(f"{rig.url}/play/{digest}?grant={grant_id}")
    assert page.locator("video").count() == 0  # requested is not approved

    head = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900}).new_page()
    sign_in(head, rig, "head", totp=True)
    row = f"tr[data-grant='{grant_id}']"
    head.fill(f"{row} input[name=totp]", "000000" if rig.totp("head") != "000000" else "111111")
    head.click(f"{row} button.approve")
    assert "动态验证码错误" in head.inner_text("#failure")
    head.fill(f"{row} input[name=totp]", rig.totp("head"))
    head.fill(f"{row} input[name=note]", "同意评查调阅")
    head.click(f"{row} button.approve")
    assert "已批准" in head.inner_text("#done")
    assert "有效" in head.inner_text(f"{row} .state")
    screenshot(head, "04-approvals")
    head.context.close()

    page.goto(f"{rig.url}/grants")
    page.click(f"tr[data-grant='{grant_id}'] a.play")
    page.wait_for_selector("video#video")
    assert "水印" in page.inner_text("#watermark-notice")
    assert page.inner_text("#clock-state") not in ("", "—")  # from the signed manifest
    timeline = page.inner_text("#timeline")
    assert "已告知" in timeline and "拒绝配合标记" in timeline
    page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=60_000)
    page.evaluate("document.getElementById('video').play()")
    page.wait_for_function("document.getElementById('video').currentTime > 0.3", timeout=30_000)
    page.click("#timeline button.jump >> nth=2")
    page.wait_for_function("Math.abs(document.getElementById('video').currentTime - 1.5) < 1.0")
    screenshot(page, "05-playback")
    # under the grant the search shows its picture (a JPEG of the watermarked copy's first frame)
    page.goto(f"{rig.url}/search")
    thumb = page.locator(f"tr[data-segment='{digest}'] img.thumb")
    thumb.wait_for()
    page.wait_for_function(f"document.querySelector(\"tr[data-segment='{digest}'] img.thumb\").naturalWidth > 0")
    assert page.locator("img.thumb").count() == 1  # only the granted segment

    mine = _entries(rig, actor="chen.ping")
    assert any(e["action"] == "request" and e["detail"]["grant"] == grant_id for e in mine)
    views = [e for e in mine if e["action"] == "view" and e["outcome"] == "ok"]
    assert {e["detail"].get("console") for e in views} >= {"playback page"}
    assert any("bytes" in e["detail"] for e in views)  # the decryption of the viewing copy
    assert any(e["action"] == "approve" and e["detail"]["grant"] == grant_id for e in _entries(rig, actor="head"))

    # the grant expires: the page and the bytes end at once
    rig.law.clock.advance(5 * 3600)
    sign_in(page, rig, "chen.ping")  # five idle hours ended the session, too
    page.goto(f"{rig.url}/play/{digest}?grant={grant_id}")
    assert page.locator("video").count() == 0
    assert "过期" in page.inner_text("#error-detail")
    assert page.request.get(f"{rig.url}/media/{digest}?grant={grant_id}").status == 403
    page.goto(f"{rig.url}/grants")
    assert "已过期" in page.inner_text(f"tr[data-grant='{grant_id}'] .state")


def test_roles_are_kept_to_their_pages_and_refusals_are_audited(rig, page):
    sign_in(page, rig, "zhang.wei")
    for path in ("/audit", "/docks"):
        response = page.goto(f"{rig.url}{path}")
        assert response.status == 403 and "无权打开" in page.inner_text("h1")
    denied = [e for e in _entries(rig, actor="zhang.wei") if e["action"] == "denied"]
    assert {e["detail"]["wanted"] for e in denied} >= {"console:audit", "console:docks"}
    response = page.goto(f"{rig.url}/play/no-such-segment")
    assert response.status == 404 and "没有这个页面" in page.inner_text("h1")
    response = page.request.post(f"{rig.url}/grants/abc/decision", form={})
    assert response.status in (400, 403) and "Traceback" not in response.text()
    # a forged or garbled session cookie is no session: back to the sign-in page
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "BODYCAM_CONSOLE", "value": "Z2FyYmxlZA==", "url": rig.url}])
    response = page.goto(f"{rig.url}/audit")
    assert "/login" in page.url and response.status == 200


def test_the_audit_page_filters_and_exports_csv_and_pdf(rig, page):
    sign_in(page, rig, "zhang.wei")
    page.goto(f"{rig.url}/search?party=商店")  # something of zhang.wei's in the trail
    page.context.clear_cookies()
    sign_in(page, rig, "auditor")
    page.goto(f"{rig.url}/audit")
    page.fill("input[name=actor]", "zhang.wei")
    page.click("#filter")
    actors = {page.locator("#entries tbody tr").nth(i).get_attribute("data-actor")
              for i in range(page.locator("#entries tbody tr").count())}
    assert actors == {"zhang.wei"}
    screenshot(page, "08-audit")
    digest = _digests(rig)[rig.law.names[0]]
    page.goto(f"{rig.url}/audit?segment={digest}")
    assert page.locator("#entries tbody tr[data-action]").count() >= 1
    csv = page.request.get(f"{rig.url}/audit/export?format=csv&actor=zhang.wei")
    assert csv.status == 200
    lines = csv.text().lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("seq,utc,actor") and len(lines) > 1
    assert all(",zhang.wei," in line for line in lines[1:])
    pdf = page.request.get(f"{rig.url}/audit/export?format=pdf&case={CASE}")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    exports = [e for e in _entries(rig, actor="auditor") if e["action"] == "audit-export"]
    assert {e["detail"]["format"] for e in exports} == {"csv", "pdf"}


def test_the_case_page_shows_footage_in_time_order_and_places_a_hold(rig, page):
    sign_in(page, rig, "li.na")
    page.goto(f"{rig.url}/case/{CASE}")
    rows = page.locator("#case-timeline tbody tr")
    assert rows.count() == 2
    page.fill("#hold-form input[name=reason]", "行政复议期间保全")
    page.click("#hold-form button")
    assert "已设置诉讼保全" in page.inner_text("#done")
    assert "行政复议期间保全" in page.inner_text("#holds")
    screenshot(page, "03-case")
    holds = [e for e in _entries(rig, actor="li.na", case=CASE) if e["action"] == "hold"]
    assert holds


def test_dock_progress_updates_live_while_a_recorder_docks(rig, page, agency, tmp_path):
    from dock.daemon import StatusBoard

    from .dockrig import make_rig

    dock = make_rig(agency, tmp_path / "dockrig", device_id="D000077")
    dock.record(segments=3)  # worn by 010203, whom the dock's officer registry names
    registry_csv = tmp_path / "officers.csv"
    valid = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    registry_csv.write_text(f"officer_id,name,department,certificate_no,valid_until\n010203,张伟,一股,LN0102,{valid}\n")
    dock.registry.import_csv(registry_csv)
    board = StatusBoard(rig.board)
    gate, seen = threading.Event(), threading.Event()

    def progress(p):
        board.update(p)
        if p.phase == "verifying" and not seen.is_set():
            seen.set()
            gate.wait(30)  # hold the dock here until the page has shown this phase

    sign_in(page, rig, "li.na")
    page.goto(f"{rig.url}/docks")
    assert page.locator("#bays").count() == 1
    result = {}
    worker = threading.Thread(target=lambda: result.update(p=asyncio.run(dock.session(on_progress=progress).run())))
    worker.start()
    try:
        assert seen.wait(30)
        page.wait_for_function("document.querySelector('#bays').innerText.includes('校验中')")
        assert "D000077" in page.inner_text("#bays")
        gate.set()
        page.wait_for_function("document.querySelector('#bays').innerText.includes('完成')")
        updates = int(page.locator("#bays").get_attribute("data-updates"))
        assert updates >= 2
        worker.join(60)
        assert result["p"].phase == "done" and result["p"].segments_archived == 3
        text = page.inner_text("#bays")
        assert "已归档 3 / 3 个片段" in text
        assert page.inner_text("tr[data-bay$='/1'] .officer") == "010203 张伟"
        screenshot(page, "02-docks")
    finally:
        gate.set()
        worker.join(60)
        dock.close()
    # a recorder last docked three days ago is listed as not docked in time (Art. 11)
    from archive import index as ix
    from device.sealing.clock import utc_text

    with rig.law.archive.engine.begin() as conn:
        conn.execute(ix.devices.insert().values(
            device="B999999", certificate_blob="0" * 64, agency="test-agency",
            last_docked_utc=utc_text(rig.law.clock.utc_now() - dt.timedelta(days=3))))
    page.goto(f"{rig.url}/docks")
    assert "B999999" in page.inner_text("#late") and "A123456" not in page.inner_text("#late")
    saved = json.loads(rig.board.read_text())["bays"]["1"]
    assert saved["device"] == "D000077"
    assert audit_of(rig.law.archive).head("test-agency") is not None


def test_the_review_page_draws_a_sample_the_head_approves_and_findings_make_statistics(rig, browser, page):
    # the form takes Beijing dates (both days included)
    today = dt.date.fromisoformat(queries.beijing_text(max(r["opened_utc"] for r in rig.law.archive.search(None)))[:10])
    sign_in(page, rig, "chen.ping")
    page.goto(f"{rig.url}/review")
    page.fill("input[name=since]", (today - dt.timedelta(days=1)).isoformat())
    page.fill("input[name=until]", today.isoformat())
    page.fill("input[name=size]", "2")
    page.click("#draw")
    assert "已抽取 2 个样本" in page.inner_text("#done")
    grant_id = int(page.locator("h3[data-grant]").first.get_attribute("data-grant"))
    table = f"table.sample[data-grant='{grant_id}']"
    assert page.locator(f"{table} tbody tr").count() == 2
    assert page.locator(f"{table} .finding-form").count() == 0  # nothing to judge before the approval

    head = browser.new_context(ignore_https_errors=True).new_page()
    sign_in(head, rig, "head", totp=True)
    head.fill(f"tr[data-grant='{grant_id}'] input[name=totp]", rig.totp("head"))
    head.click(f"tr[data-grant='{grant_id}'] button.approve")
    assert "已批准" in head.inner_text("#done")
    head.context.close()

    page.goto(f"{rig.url}/review")
    row = page.locator(f"{table} tbody tr").first
    digest = row.get_attribute("data-segment")
    row.locator("select[name=result]").select_option("problem")
    row.locator("input[name=note]").fill("未见告知")
    row.locator("button").click()
    assert "已记录" in page.inner_text("#done")
    assert "发现问题" in page.inner_text(f"{table} tr[data-segment='{digest}'] .finding")
    assert "0%" in page.inner_text("#stats-officer")
    screenshot(page, "06-review")
    mine = _entries(rig, actor="chen.ping")
    assert any(e["action"] == "sample" and e["detail"]["drawn"] == 2 for e in mine)
    assert any(e["action"] == "finding" and e["segments"] == [digest] and e["detail"]["result"] == "problem"
               for e in mine)


def test_the_misuse_timeline_shows_a_shift_as_an_auditor(rig, page):
    from archive.console.oversight import SHIFT_ZONE

    opened = min(r["opened_utc"] for r in rig.law.archive.search(None, officer="010203"))
    local = dt.datetime.fromisoformat(opened.replace("Z", "+00:00")).astimezone(SHIFT_ZONE)
    sign_in(page, rig, "auditor")
    page.goto(f"{rig.url}/misuse")
    page.fill("input[name=officer]", "010203")
    page.fill("input[name=day]", local.date().isoformat())
    page.fill("input[name=start]", "00:00")
    page.fill("input[name=end]", "23:59")
    page.fill("input[name=late_minutes]", "0")
    page.click("#show")
    kinds = [page.locator("#flags tbody tr").nth(i).get_attribute("data-kind")
             for i in range(page.locator("#flags tbody tr").count())]
    assert "late-activation" in kinds and "outside-duty" not in kinds
    assert "迟开启" in page.inner_text("#flags")
    screenshot(page, "07-misuse")
    read = [e for e in _entries(rig, actor="auditor") if e["detail"].get("console") == "misuse timeline"]
    assert read and len(read[-1]["segments"]) == 3


def test_the_misuse_timeline_shows_footage_deleted_without_a_receipt(rig, page):
    """Someone deletes a sealed segment from the recorder's card; at the next
    commit the archive finds it gone from the seal log's account, and the
    auditor sees it listed, and on the officer's shift."""
    from device.sealing.state import SealingState

    from .lawful_rig import fmp4_fragments

    law = rig.law
    sealing = SealingState.open(law.state, law.clock)
    try:
        law.clock.advance(600)
        writer = sealing.open_segment("video/mp4", "010203", {"hw_config": "sim", "mode": "video"})
        for fragment in fmp4_fragments():
            law.clock.advance(0.5)
            writer.append(fragment)
        writer.close({"events": []})
    finally:
        sealing.close()
    for suffix in (".bcseg", ".bcman"):  # by hand, from a card reader: the seal log says nothing
        (law.state / "segments" / f"{writer.name}{suffix}").unlink()
    law.archive.commit_recording(None, law.state, law.names, source="test")

    sign_in(page, rig, "auditor")
    page.goto(f"{rig.url}/misuse")  # without a shift: the agency's custody findings, newest first
    listed = page.locator(f"#custody tbody tr[data-segment='{writer.name}']")
    assert listed.count() == 1 and "无删除记录" in listed.inner_text() and "本归档库无副本" in listed.inner_text()
    screenshot(page, "07-misuse-custody")
    listed.locator("a").click()  # the officer's day
    page.wait_for_selector("#flags")
    row = page.locator("#flags tbody tr[data-kind='deleted-without-receipt']")
    assert row.count() == 1
    text = row.inner_text()
    assert writer.name in text and "音像记录未经回执被删除" in text and "本归档库无副本" in text
    assert "无删除记录" in text  # sealed, then gone with no deletion logged
    screenshot(page, "07-misuse-deleted")


def test_a_keeper_checks_a_docked_recorder_out_to_a_certified_officer(rig, page, tmp_path):
    from dock.checkout_inbox import apply_checkout_requests
    from dock.daemon import StatusBoard
    from dock.registry import Registry
    from dock.session import Progress

    StatusBoard(rig.board).update(Progress(bay=2, device="D000088", phase="done", ready=True, outcome="docked"))
    csv = tmp_path / "officers.csv"
    valid = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    csv.write_text(f"officer_id,name,department,certificate_no,valid_until\n020304,Li Na,一股,LN210456,{valid}\n")
    registry = Registry(tmp_path / "registry.sqlite")
    registry.import_csv(csv)
    sign_in(page, rig, "li.na")
    page.goto(f"{rig.url}/docks")
    row = "tr[data-bay$='/2']"
    page.fill(f"{row} input[name=officer]", "020304")
    page.click(f"{row} .checkout-form button")
    page.wait_for_function("document.querySelector(\"tr[data-bay$='/2'] .checkout\").innerText.includes('020304')")
    assert "等待采集站" in page.inner_text(f"{row} .checkout")
    # the dock applies it against its registry of certified officers; the page follows live
    assert apply_checkout_requests(rig.board.parent, registry, {1, 2})[0]["outcome"] == "assigned"
    assert registry.pending(2).officer == "020304"
    page.wait_for_function("document.querySelector(\"tr[data-bay$='/2'] .checkout\").innerText.includes('已分配给')")
    screenshot(page, "02-docks-checkout")
    page.fill(f"{row} input[name=officer]", "999999")
    page.click(f"{row} .checkout-form button")
    assert apply_checkout_requests(rig.board.parent, registry, {1, 2})[0]["outcome"] == "refused"
    page.wait_for_function("document.querySelector(\"tr[data-bay$='/2'] .checkout\").innerText.includes('分配被拒绝')")
    assert registry.pending(2).officer == "020304"  # the refused request changed nothing
    page.fill(f"{row} input[name=officer]", "bad id")
    page.click(f"{row} .checkout-form button")
    assert "请求无法完成" in page.inner_text("h1")
    requests = [e["detail"]["officer"] for e in _entries(rig, actor="li.na") if e["action"] == "checkout"]
    assert requests == ["020304", "999999"]


def test_the_demo_prints_the_console_and_a_login_per_role_that_work(browser, tmp_path):
    import re

    from bodycam.demo import run_demo
    from bodycam.demo_console import DEMO_PEOPLE, start_demo_console

    lines: list[str] = []
    done = {}
    # its own thread: the dock runs an asyncio loop, and Playwright's sync API owns this thread's
    worker = threading.Thread(target=lambda: done.update(ok=run_demo(tmp_path / "demo", 4, 2, None,
                                                                     echo=lines.append)))
    worker.start()
    worker.join(300)
    assert done.get("ok"), "\n".join(lines)
    seen = {}

    def visit() -> None:
        text = "\n".join(lines)
        url = re.search(r"console +(https://\S+?)/ ", text).group(1)
        logins = dict(re.findall(r"login +\w+ +(\S+) +password (\S+)", text))
        assert set(logins) == {u for u, _n, _r in DEMO_PEOPLE}
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(f"{url}/login")
        page.fill("input[name=username]", "li.na")
        page.fill("input[name=password]", logins["li.na"])
        page.click("#sign-in")
        page.wait_for_selector("#bays")
        seen["docks"] = page.inner_text("#bays")
        page.goto(f"{url}/search")
        seen["rows"] = page.locator("#results tbody tr").count()
        context.close()
        context = browser.new_context(ignore_https_errors=True)  # the auditor, at the printed misuse address
        page = context.new_page()
        page.goto(f"{url}/login")
        page.fill("input[name=username]", "sun.shen")
        page.fill("input[name=password]", logins["sun.shen"])
        page.click("#sign-in")
        page.wait_for_load_state()
        page.goto(re.search(r"misuse timeline \(as sun.shen\): (\S+)", text).group(1))
        seen["shift"] = page.inner_text("#shift")
        seen["flags"] = page.locator("#flags tbody tr").count()
        context.close()

    url = start_demo_console(tmp_path / "demo", lines.append, serve=True, wait=visit)
    assert url.startswith("https://127.0.0.1:")
    assert "A123456" in seen["docks"] and "完成" in seen["docks"]
    assert "020304 Li Na" in seen["docks"]  # handed out at the docking, named from the dock's registry
    videos, photos = map(int, re.search(r"segments +(\d+) video segments .* plus (\d+) photo", "\n".join(lines)).groups())
    assert seen["rows"] == videos + photos
    assert f"读取 {videos + photos} 个片段" in seen["shift"] and seen["flags"] >= 1


def test_another_agency_sees_none_of_this_agencys_footage_grants_trail_or_bays(rig, browser, tmp_path):
    """Two agencies share the archive (Art. 2): every page keeps to the visitor's."""
    from archive.accounts import Accounts
    from archive.config import load_archive_config
    from archive.console.app import RunningConsole
    from archive.console.tls import make_web_certificate
    from archive.service import Archive
    from device.sealing import pki

    from .conftest import make_agency

    other = make_agency(tmp_path / "other")
    key = pki.issue_keypair(other.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-2", tmp_path / "other-keys")
    config = tmp_path / "two.toml"
    config.write_text(rig.law.config_path.read_text() + (
        f'\n[[agencies]]\nid = "other-agency"\nname = "另一执法局"\nca = "{other.ca_cert_path}"\n'
        f'receipt_key = "{key}"\nreceipt_certificate = "{key.with_suffix(".crt")}"\n'))
    shared = Archive(load_archive_config(config), clock=rig.law.clock)
    Accounts(shared).add("other-agency", "zhou.qi", "周琦", "keeper", PASSWORD, by="admin")
    Accounts(shared).add("other-agency", "wu.shen", "吴审", "auditor", PASSWORD, by="admin")
    from dock.daemon import StatusBoard
    from dock.session import Progress

    StatusBoard(rig.board).update(Progress(bay=3, device="A123456", phase="done"))  # test-agency's recorder
    running = RunningConsole(shared, dock_status=[rig.board.parent],
                             tls=make_web_certificate(tmp_path / "tls", ["127.0.0.1"])).start()
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    try:
        other_rig = type(rig)(rig.law, rig.accounts, running.url, running, rig.board)
        sign_in(page, other_rig, "zhou.qi")
        page.goto(f"{running.url}/search")
        assert page.locator("#results tbody tr").count() == 0
        digest = _digests(rig)[rig.law.names[1]]
        assert page.goto(f"{running.url}/play/{digest}").status == 404
        assert page.request.get(f"{running.url}/media/{digest}").status == 404
        assert page.goto(f"{running.url}/case/{CASE}").status == 404
        page.goto(f"{running.url}/grants")
        assert page.locator("#grants tbody tr[data-grant]").count() == 0
        page.goto(f"{running.url}/docks")
        assert "A123456" not in page.inner_text("#bays")
        token = page.locator("input[name=csrf_token]").first.get_attribute("value")
        response = page.request.post(f"{running.url}/docks/checkout",
                                     form={"csrf_token": token, "dock": "0", "bay": "3", "officer": "020304"})
        assert response.status == 403 and not (rig.board.parent / "checkout-requests" / "3.json").exists()
        assert [e["detail"]["wanted"] for e in _entries_of(shared, "other-agency", "zhou.qi")
                if e["action"] == "denied"] == ["checkout"]
        context.clear_cookies()
        sign_in(page, other_rig, "wu.shen")
        page.goto(f"{running.url}/audit")
        actors = {page.locator("#entries tbody tr").nth(i).get_attribute("data-actor")
                  for i in range(page.locator("#entries tbody tr[data-actor]").count())}
        assert actors and actors <= {"zhou.qi", "wu.shen", "admin"}
    finally:
        context.close()
        running.stop()
        shared.close()


def test_an_audio_only_segment_plays_under_a_grant_as_a_video_of_the_viewers_mark(rig, page, agency, tmp_path):
    """A segment recorded without picture (the recorder in audio mode) plays in the
    console: its viewing copy is a video of the watermark over black, with the sound."""
    import io

    import av

    from archive.grants import Grants
    from archive.watermark import AUDIO_PICTURE

    from .test_watermark_audio import record_audio_only

    state, segments, _plain = record_audio_only(agency, tmp_path, "W000003")
    names = [name for name, media, _meta in segments if media == "audio/mp4"]
    assert names, segments
    rig.law.archive.commit_recording(None, state, names, source="test")
    digest = {r["name"]: r["segment_digest"] for r in rig.law.archive.search(None, limit=100)}[names[0]]
    rig.law.clock.advance(60)  # a fresh TOTP step for the approver
    grants = Grants(rig.law.archive)
    g = grants.request(rig.accounts.get("chen.ping"), grantee="chen.ping", actions=["view"],
                       reason="核查录音（第二十四条）", hours=2, segments=[digest])
    g = grants.decide(rig.accounts.get("head"), g.id, approve=True, totp=rig.totp("head"), note="同意")
    assert g.status == "approved"

    sign_in(page, rig, "chen.ping")
    page.goto(f"{rig.url}/play/{digest}?grant={g.id}")
    page.wait_for_selector("video#video")
    page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=60_000)
    page.evaluate("document.getElementById('video').play()")
    page.wait_for_function("document.getElementById('video').currentTime > 0.3", timeout=30_000)
    assert page.evaluate("document.getElementById('video').videoWidth") == AUDIO_PICTURE[0]
    screenshot(page, "05-playback-audio-only")
    response = page.request.get(f"{rig.url}/media/{digest}?grant={g.id}")
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.body())) as copy:
        assert [s.type for s in copy.streams] == ["video", "audio"]
        assert "陈平(chen.ping)" in copy.metadata["comment"]
    views = [e for e in _entries(rig, actor="chen.ping") if e["action"] == "view" and e["outcome"] == "ok"]
    assert any(digest in e["segments"] and "bytes" in e["detail"] for e in views)
