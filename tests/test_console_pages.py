"""The console's pages as Chinese staff use them (Debian's chromium through
Playwright, and its request API for the HTTP-level checks): playback jumps
to an event's place within its segment, filters offer the labels the tables
show, refusals and form errors are catalogue (Chinese) messages naming the
field, times are Beijing time, the audit page reads and pages, the approver
sees what they approve, and forms redirect after a POST."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from archive.audit import audit_of
from archive.console import queries

from .console_rig import CASE, make_console, sign_in
from .lawful_rig import OFFICER, fmp4_fragments
from .test_console import browser, page  # noqa: F401 - the same chromium and page fixtures

BEIJING = ZoneInfo("Asia/Shanghai")
ENGLISH_WORDS = re.compile(r"[A-Za-z]{5,}")  # a developer's message; codes and names here are shorter or absent
PRE_ROLL_US = 7_000_000  # the segment starts 7 s into the recording (pre-roll and an earlier segment)


@pytest.fixture(scope="module")
def rig(agency, tmp_path_factory):
    """The console over SQLite (test_console.py runs every page on PostgreSQL as well)."""
    rig = make_console(agency, tmp_path_factory.mktemp("console-pages"))
    yield rig
    rig.running.stop()
    rig.law.close()


def _digest(rig, name):
    return next(r["segment_digest"] for r in rig.law.archive.search(None, limit=100) if r["name"] == name)


def _grant(rig, username, digest, *, approve=True):
    """A view grant for ``username`` on ``digest``, approved by the agency head (or left pending)."""
    grants = rig.running.console.grants
    g = grants.request(rig.accounts.get(username), grantee=username, actions=["view"], reason="评查调阅",
                       hours=4, segments=[digest])
    if approve:
        g = grants.decide(rig.accounts.get("head"), g.id, approve=True, totp=rig.totp("head"), note="同意")
    return g


def _seal_segment_after_pre_roll(rig) -> str:
    """One more 2 s video whose manifest says it starts PRE_ROLL_US into the recording,
    with events at 0.5 s and 1.5 s into it and one logged 20 s into the recording
    (after this segment), as the recorder's media clock counts them (format.md §11)."""
    from device.sealing.state import SealingState

    law = rig.law
    sealing = SealingState.open(law.state, law.clock)
    try:
        writer = sealing.open_segment("video/mp4", OFFICER, {"hw_config": "sim", "mode": "video"})
        for frag in fmp4_fragments():
            law.clock.advance(0.5)
            writer.append(frag)
        events = [{"event": "mark", "kind": "mark", "media_us": PRE_ROLL_US + 500_000},
                  {"event": "photo", "media_us": PRE_ROLL_US + 1_500_000},
                  {"event": "mark", "kind": "refusal", "media_us": PRE_ROLL_US + 20_000_000}]
        writer.close({"events": events, "media_start_us": PRE_ROLL_US, "last_video_us": PRE_ROLL_US + 1_900_000,
                      "video": {"codec": "h264", "width": 160, "height": 120, "fps": 10}})
        name = writer.name
    finally:
        sealing.close()
    law.archive.commit_recording(None, law.state, [name], source="test")
    return _digest(rig, name)


def test_a_timeline_button_puts_the_video_at_the_events_place_within_its_segment(rig, page):
    digest = _seal_segment_after_pre_roll(rig)
    g = _grant(rig, "chen.ping", digest)
    sign_in(page, rig, "chen.ping")
    page.goto(f"{rig.url}/play/{digest}?grant={g.id}")
    buttons = page.locator("#timeline button.jump")
    assert [buttons.nth(i).inner_text() for i in range(buttons.count())] == ["0.5 秒", "1.5 秒"]
    outside = page.inner_text("#timeline li.outside")
    assert "不在本片段内" in outside and "拒绝配合标记" in outside
    page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=60_000)
    for i, want in ((1, 1.5), (0, 0.5)):
        buttons.nth(i).click()
        page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {want}) < 0.25")


def test_filters_are_select_lists_of_the_labels_the_results_show(rig, page):
    sign_in(page, rig, "zhang.wei")
    page.goto(f"{rig.url}/search")
    page.select_option("select[name=mark]", label="拒绝配合标记")
    page.click("#search")
    assert "mark=refusal" in page.url
    rows = page.locator("#results tbody tr")
    assert rows.count() >= 1 and all("拒绝配合标记" in rows.nth(i).inner_text() for i in range(rows.count()))
    page.goto(f"{rig.url}/search")
    page.select_option("select[name=event]", label="已告知（第二十二条）")
    page.click("#search")
    assert page.locator("#results tbody tr").count() == 1
    page.goto(f"{rig.url}/search")
    page.select_option("select[name=act_type]", label="检查")
    page.click("#search")
    assert page.locator("#results tbody tr").count() == 2  # the case's two segments
    page.goto(f"{rig.url}/case/{CASE}")
    assert "检查" in page.inner_text(".facts") and "inspection" not in page.inner_text("main")
    # a label typed as a value is no silent "0 found": the field says what is wrong
    page.goto(f"{rig.url}/search?mark=拒绝配合标记")
    assert "标记一栏" in page.inner_text("#search-error")


def _beijing_today(rig) -> str:
    return rig.law.clock.utc_now().astimezone(BEIJING).date().isoformat()


def test_search_dates_are_beijing_days_both_included_and_errors_are_chinese(rig, page):
    sign_in(page, rig, "zhang.wei")
    today = _beijing_today(rig)
    page.goto(f"{rig.url}/search?since={today}&until={today}")
    assert page.locator("#search-error").count() == 0
    rows = rig.law.archive.search(None, limit=100)
    assert page.locator("#results tbody tr").count() == len(rows)
    first = page.locator(f"tr[data-segment='{rows[0]['segment_digest']}']").inner_text()
    assert queries.beijing_text(rows[0]["opened_utc"]) in first  # Beijing time, as the heading says
    assert "北京时间" in page.inner_text("#results thead")
    for query, field in (("since=2026-12-01&until=2026-11-01", "截止日期"), ("since=2026-13-45", "起始日期")):
        page.goto(f"{rig.url}/search?{query}")
        error = page.inner_text("#search-error")
        assert field in error and not ENGLISH_WORDS.search(error), error


def test_refusals_and_form_errors_are_catalogue_messages_naming_the_field(rig, browser, page):
    name = rig.law.names[0]
    digest = _digest(rig, name)
    theirs = _grant(rig, "chen.ping", digest)
    sign_in(page, rig, "li.na")
    response = page.goto(f"{rig.url}/play/{digest}?grant={theirs.id}")
    detail = page.inner_text("#error-detail")
    assert response.status == 403 and "授权" in detail and not ENGLISH_WORDS.search(detail), detail

    page.goto(f"{rig.url}/case/{CASE}")
    page.fill("#label-form textarea[name=segments]", "nosuch")
    page.click("#label-form button")
    assert "本档案中没有：nosuch" in page.inner_text(".failure")
    page.goto(f"{rig.url}/case/{CASE}")
    token = page.locator("#hold-form input[name=csrf_token]").get_attribute("value")
    response = page.request.post(f"{rig.url}/case/{CASE}/hold", form={"reason": "长" * 2001, "csrf_token": token})
    assert response.status == 400 and "理由一栏" in response.text()  # the browser stops at maxlength; a script not
    response = page.request.post(f"{rig.url}/case/{CASE}/hold", form={"reason": "无令牌", "csrf_token": "forged"})
    assert response.status == 400 and "表单已过期" in response.text()
    response = page.request.post(f"{rig.url}/case/{CASE}/release", form={"hold": "abc", "csrf_token": token})
    assert response.status == 400 and "诉讼保全一栏" in response.text() and "表单已过期" not in response.text()
    page.context.clear_cookies()
    sign_in(page, rig, "auditor")
    page.goto(f"{rig.url}/audit?segment=abc")
    error = page.inner_text(".audit-error")
    assert "摘要" in error and not ENGLISH_WORDS.search(error), error
    response = page.request.get(f"{rig.url}/audit/export?format=xml")
    assert response.status == 400 and "CSV 或 PDF" in response.text() and "format: csv" not in response.text()

    pending = _grant(rig, "chen.ping", digest, approve=False)
    head = browser.new_context(ignore_https_errors=True).new_page()
    sign_in(head, rig, "head", totp=True)
    row = f"tr[data-grant='{pending.id}']"
    head.fill(f"{row} input[name=totp]", rig.totp("head"))
    head.fill(f"{row} input[name=note]", "注" * 2001)
    head.click(f"{row} button.approve")
    failure = head.inner_text("#failure")
    assert "备注一栏" in failure and "动态验证码" not in failure, failure
    live = f"tr[data-grant='{theirs.id}']"
    head.fill(f"{live} input[name=reason]", "撤" * 2001)
    head.click(f"{live} button")
    failure = head.inner_text("#failure")
    assert "理由一栏" in failure and failure != "请填写理由。", failure
    head.context.close()


def test_the_approver_sees_the_segments_case_reason_and_hours_requested(rig, browser):
    name = rig.law.names[1]
    pending = _grant(rig, "chen.ping", _digest(rig, name), approve=False)
    head = browser.new_context(ignore_https_errors=True).new_page()
    sign_in(head, rig, "head", totp=True)
    row = head.locator(f"tr[data-grant='{pending.id}']")
    scope = row.locator(".scope")
    assert name in scope.inner_text() and "4 小时" in scope.inner_text()
    assert "评查调阅" in row.locator(".reason").inner_text()
    scope.locator("a", has_text=name).click()
    head.wait_for_load_state()
    assert head.locator(f"#results tr[data-segment='{pending.segments[0]}']").count() == 1
    head.context.close()


def test_the_audit_page_reads_chinese_pages_back_and_filters_by_beijing_date(rig, page):
    log_ = audit_of(rig.law.archive)
    for i in range(205):  # more than one page, from the archive host (role "host")
        log_.record("test-agency", "account", detail={"说明": f"第 {i} 次账户变更"})
    sign_in(page, rig, "auditor")
    page.goto(f"{rig.url}/audit")
    rows = page.locator("#entries tbody tr[data-action]")
    assert rows.count() == queries.AUDIT_PAGE_LIMIT
    cells = page.locator("#entries tbody tr[data-action=account]").first.locator("td")
    detail = cells.nth(8).inner_text()
    assert "第 204 次账户变更" in detail and "\\u" not in detail
    assert cells.nth(3).inner_text() == "档案主机（命令行）" and cells.nth(4).inner_text() == "账户变更"
    seqs = [int(rows.nth(i).locator("td").first.inner_text()) for i in range(rows.count())]
    page.click("#older")
    older = page.locator("#entries tbody tr[data-action]")
    older_seqs = [int(older.nth(i).locator("td").first.inner_text()) for i in range(older.count())]
    assert older_seqs and max(older_seqs) == min(seqs) - 1
    today = dt.date.fromisoformat(_beijing_today(rig))
    page.goto(f"{rig.url}/audit?since={(today + dt.timedelta(days=1)).isoformat()}")
    assert page.locator("#entries tbody tr[data-action]").count() == 0
    page.goto(f"{rig.url}/audit?since={today.isoformat()}&until={today.isoformat()}&actor=auditor")
    assert page.locator("#entries tbody tr[data-action]").count() >= 1


def test_forms_redirect_after_a_post_and_case_numbers_are_trimmed(rig, page):
    sign_in(page, rig, "li.na")
    page.goto(f"{rig.url}/case/{CASE}")
    page.fill("#hold-form input[name=reason]", "复议期间保全")
    page.click("#hold-form button")
    assert page.url.endswith(f"/case/{CASE}") or "/hold" not in page.url
    assert "已设置诉讼保全" in page.inner_text("#done")
    holds = len(rig.law.archive.holds(None))
    page.reload()
    assert len(rig.law.archive.holds(None)) == holds and page.locator("#done").count() == 0

    # a case number with spaces around it is the same case everywhere
    page.goto(f"{rig.url}/grants")
    page.fill("#request-form input[name=case_number]", f" {CASE} ")
    page.fill("#request-form textarea[name=reason]", "复核")
    page.click("#file-request")
    assert "已提交" in page.inner_text("#done") and "/grants" in page.url
    assert page.locator("#failure").count() == 0

    # a new case is started from the search page by its number, then labelling; a number may
    # hold "/", "?", "#" or "%" (each stays one path segment of the case's address)
    new = f"顺市监罚/{dt.datetime.now().microsecond}?#%号"
    page.goto(f"{rig.url}/search")
    page.fill("#open-case input[name=number]", f"{new} ")
    page.click("#open-case button")
    assert page.locator("#new-case").count() == 1
    page.fill("#label-form textarea[name=segments]", rig.law.names[0])
    page.click("#label-form button")
    assert "已将 1 个片段" in page.inner_text("#done") and page.locator("#new-case").count() == 0
    assert page.locator("#case-timeline tbody tr").count() == 1


def test_dock_outcomes_and_the_case_timeline_show_chinese_not_codes(rig, page):
    import json

    rig.board.write_text(json.dumps({"bays": {
        "1": {"device": "D000091", "phase": "done", "outcome": "done", "ready": True},
        "2": {"device": "D000092", "phase": "failed", "outcome": "failed: recorder did not answer", "ready": False}}}))
    sign_in(page, rig, "li.na")
    page.goto(f"{rig.url}/docks")
    outcomes = [page.locator(".outcome").nth(i).inner_text() for i in range(page.locator(".outcome").count())]
    assert outcomes == ["入坞处理完成", "入坞处理失败：recorder did not answer"]
    page.goto(f"{rig.url}/case/{CASE}")
    detail = page.locator("#case-timeline tbody tr").first.locator("td").nth(3).inner_text()
    assert "秒" in detail and "保存至" in detail and " s " not in detail and "case" not in detail, detail


def test_a_review_sample_covers_the_beijing_days_the_form_names(rig, page):
    today = _beijing_today(rig)
    sign_in(page, rig, "chen.ping")
    page.goto(f"{rig.url}/review")
    assert "含当天" in page.inner_text("#review-form")
    page.fill("input[name=since]", today)
    page.fill("input[name=until]", today)  # one day: both ends included
    page.fill("input[name=size]", "1")
    page.click("#draw")
    assert "已抽取 1 个样本" in page.inner_text("#done") and page.url.endswith("/review")
    sample = [e["payload"] for e in queries.audit_entries(rig.law.archive, "test-agency", actor="chen.ping")
              if e["payload"]["action"] == "sample"][0]
    day = dt.date.fromisoformat(today)
    assert (sample["detail"]["criteria"]["since"], sample["detail"]["criteria"]["until"]) == \
        queries.day_bounds(day, day)
    assert sample["detail"]["criteria"]["until"].startswith(f"{today}T16:00:00")  # 00:00 Beijing the next day


def test_every_page_still_reads_in_english(rig, page):
    sign_in(page, rig, "head", totp=True)
    page.goto(f"{rig.url}/lang/en?next=/grants")
    for path, heading in (("/grants", "Requests and approvals"), ("/search?mark=refusal", "Search footage"),
                          (f"/case/{CASE}", "Case"), ("/audit?since=2026-12-01&until=2026-11-01", "Audit trail"),
                          ("/review", "Review"), ("/misuse", "Misuse timeline"), ("/docks", "Docks")):
        response = page.goto(f"{rig.url}{path}")
        assert response.status == 200 and heading in page.inner_text("h1"), path
    assert "The end date is before the start date." in page.goto(
        f"{rig.url}/audit?since=2026-12-01&until=2026-11-01").text()


def test_an_audit_pdf_is_bounded_and_takes_the_pages_filters(rig, page, monkeypatch):
    from archive.console import routes

    monkeypatch.setattr(routes, "AUDIT_PDF_LIMIT", 5)  # the rig's trail holds more than five entries
    sign_in(page, rig, "auditor")
    refused = page.request.get(f"{rig.url}/audit/export?format=pdf")
    assert refused.status == 400 and "最多包含 5 条" in refused.text()
    today = _beijing_today(rig)
    narrowed = page.request.get(f"{rig.url}/audit/export?format=pdf&actor=auditor&since={today}&until={today}")
    assert narrowed.status == 200 and narrowed.body().startswith(b"%PDF")
    csv = page.request.get(f"{rig.url}/audit/export?format=csv&since={today}&until={today}")
    assert csv.status == 200 and len(csv.text().strip().splitlines()) > 6  # CSV is not bounded


def test_a_request_form_with_an_unknown_choice_or_a_blank_reason_says_so_in_chinese(rig, page):
    sign_in(page, rig, "zhang.wei")
    page.goto(f"{rig.url}/grants")
    token = page.locator("#request-form input[name=csrf_token]").get_attribute("value")
    before = len(rig.running.console.grants.list(rig.accounts.get("head")))
    response = page.request.post(f"{rig.url}/grants", form={
        "csrf_token": token, "case_number": CASE, "actions": "delete", "reason": "   ", "hours": "2"})
    text = response.text()
    assert response.status == 400 and "用途一栏：不在可选范围内：delete" in text and "理由（第十九条）一栏" in text
    assert "is not a valid choice" not in text and "reason is required" not in text
    response = page.request.post(f"{rig.url}/grants", form={
        "csrf_token": token, "case_number": "未立案号", "actions": "view", "reason": "核查", "hours": "2"})
    assert response.status == 400 and "案件编号一栏：没有这个案件" in response.text() and "no case" not in response.text()
    assert len(rig.running.console.grants.list(rig.accounts.get("head"))) == before
