"""What the console shows for the archive's codes (marks, events, kinds of
act, retention classes, roles, audit actions and outcomes): one table each,
used by the templates (as globals) and by the forms' select lists, so a
filter offers exactly the words the result tables show while the value sent
stays the archive's code.  Texts are msgids of the console's catalogues.
"""

from __future__ import annotations

from .i18n import lazy_gettext as _  # shown in the page's language when rendered

MARKS = {"mark": _("mark"), "refusal": _("refusal mark"), "obstruction": _("obstruction mark")}
EVENTS = {"notify": _("notice given (Art. 22)"), "mark": _("mark"), "photo": _("photo"),
          "clock": _("clock state")}
# archive/service.py ACT_TYPES (Art. 14: kinds of enforcement act recorded in full)
ACT_TYPES = {"inspection": _("inspection"), "sampling": _("sampling"), "seizure": _("sealing up or seizure"),
             "hearing": _("hearing"), "evidence": _("taking evidence"), "service": _("service of documents"),
             "coercion": _("administrative coercion"), "penalty": _("administrative penalty"),
             "patrol": _("patrol inspection"), "other": _("other")}
# archive/service.py DOCUMENT_KINDS (written records attached to a case)
DOCUMENT_KINDS = {"note": _("note"), "form": _("form"), "service-receipt": _("service receipt"),
                  "postal-receipt": _("postal receipt"), "e-service": _("electronic service"),
                  "decision": _("decision"), "scan": _("scan"), "other": _("other")}
RETENTION_CLASSES = {"patrol": _("patrol (6 months)"), "review": _("awaiting review"), "case": _("case file"),
                     "art13": _("long-term (Art. 13)")}
CLOCK_STATES = {"synced": _("synchronised by a dock since it started"),
                "rtc": _("from its battery clock, not synchronised since it started"),
                "untrusted": _("untrusted: no battery clock and no synchronisation")}
ROLES = {"officer": _("officer"), "keeper": _("archive keeper"), "approver": _("agency head (approver)"),
         "reviewer": _("reviewer"), "auditor": _("auditor"), "recipient": _("external recipient"),
         "host": _("archive host (command line)")}
# archive/audit.py actions, as archive/report.py ACTIONS_ZH names them in the PDF
AUDIT_ACTIONS = {
    "search": _("search"), "view": _("view"), "export": _("export"), "label": _("label"),
    "unlabel": _("label removed"), "classify": _("long-term class"), "review": _("review"),
    "retention": _("retention changed"), "hold": _("legal hold"), "release": _("hold released"),
    "expire": _("expired and deleted"), "attach": _("written record attached"), "request": _("request"),
    "approve": _("approval"), "refuse": _("refusal"), "revoke": _("revocation"), "grant-expired": _("grant expired"),
    "denied": _("denied"), "login": _("sign-in"), "account": _("account change"),
    "audit-export": _("audit export"), "disc": _("disc image"), "sample": _("review sample"),
    "finding": _("review finding"), "checkout": _("check-out")}
AUDIT_OUTCOMES = {"ok": _("done"), "denied": _("denied"), "refused": _("refused"), "error": _("error")}


def choices(table: dict, *, anything) -> list[tuple[str, object]]:
    """WTForms choices: ``("", anything)`` then each code with its label."""
    return [("", anything), *table.items()]


TEMPLATE_GLOBALS = {"MARKS": MARKS, "EVENTS": EVENTS, "ACT_TYPES": ACT_TYPES, "RETENTION_CLASSES": RETENTION_CLASSES,
                    "CLOCK_STATES": CLOCK_STATES, "ROLES": ROLES, "AUDIT_ACTIONS": AUDIT_ACTIONS,
                    "AUDIT_OUTCOMES": AUDIT_OUTCOMES, "DOCUMENT_KINDS": DOCUMENT_KINDS}
