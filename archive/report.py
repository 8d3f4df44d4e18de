"""Readable documents for agency staff, courts and review bodies, in
Simplified Chinese: the evidence package's report (HTML via Jinja2, PDF via
WeasyPrint with Debian's fonts-noto-cjk) and the audit log as PDF."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"

ACTIONS_ZH = {
    "search": "检索", "view": "查看", "export": "导出", "label": "标注", "unlabel": "取消标注",
    "classify": "长期保存定类", "review": "审查", "retention": "保存期限变更", "hold": "诉讼保全",
    "release": "解除保全", "expire": "到期删除", "attach": "附加书面记录", "request": "申请调阅",
    "approve": "批准", "refuse": "拒绝", "revoke": "撤销授权", "grant-expired": "授权到期", "denied": "越权被拒",
    "login": "登录", "account": "账户变更", "audit-export": "导出审计日志", "disc": "刻录光盘映像", "sample": "抽样审查", "finding": "审查意见",
}
OUTCOMES_ZH = {"ok": "成功", "refused": "被拒绝", "denied": "无权限", "error": "出错"}
ROLES_ZH = {"officer": "执法人员", "keeper": "档案管理员", "approver": "机关负责人", "reviewer": "司法行政审查人员",
            "auditor": "审计人员", "recipient": "外部接收方", "host": "档案主机"}
EVENTS_ZH = {"notify": "告知（开始录音录像）", "mark": "标记", "photo": "拍照", "record-start": "开始录制",
             "record-stop": "停止录制", "clock-set": "校时", "assignment": "领用登记", "refusal": "拒不配合标记"}
CLOCK_ZH = {"synced": "已校时（入坞校时后）", "rtc": "实时时钟（自上次校时后未再校时）", "untrusted": "时间不可信"}


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    return env


def html_to_pdf(html: str, base: Path | None = None) -> bytes:
    """Render HTML to PDF with WeasyPrint (CJK glyphs from fonts-noto-cjk)."""
    from weasyprint import HTML

    return HTML(string=html, base_url=str(base) if base else None).write_pdf()


def render_audit_pdf(*, agency, entries: list[dict[str, Any]], case: str | None, actor: str | None,
                     head: tuple[int, str] | None, stamps: list[dict[str, Any]], now: str) -> bytes:
    for e in entries:
        e["detail_text"] = json.dumps(e.get("detail") or {}, ensure_ascii=False)[:300]
    html = environment().get_template("audit.html.j2").render(
        agency=agency, entries=entries, case=case, actor=actor, head=head, stamps=stamps, now=now,
        actions=ACTIONS_ZH, outcomes=OUTCOMES_ZH, roles=ROLES_ZH)
    return html_to_pdf(html)


def render_package_report(context: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.pdf`` into ``out_dir`` (thumbnails are
    relative paths inside the package).  Returns both paths."""
    context = {**context, "actions": ACTIONS_ZH, "outcomes": OUTCOMES_ZH, "roles": ROLES_ZH, "events_zh": EVENTS_ZH,
               "clock_zh": CLOCK_ZH}
    html = environment().get_template("report.html.j2").render(**context)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")
    pdf_path = out_dir / "report.pdf"
    pdf_path.write_bytes(html_to_pdf(html, base=out_dir))
    return html_path, pdf_path
