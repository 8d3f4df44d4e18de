"""The console's forms (WTForms), with WTForms' session CSRF on every form that changes something.

A form is bound with :func:`bind`: the POSTed fields (aiohttp's MultiDict,
adapted to WTForms' ``getlist``), the app's CSRF secret and the visitor's
session (aiohttp-session), so the token lives in the encrypted session
cookie and expires after :data:`CSRF_TIME_LIMIT`.  Labels are not set here:
templates write them through the gettext catalogue.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from wtforms import DateField, Form, IntegerField, TimeField, PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms import validators as v
from wtforms.csrf.session import SessionCSRF
from wtforms.i18n import get_translations

from aiohttp.web import FileField

from bodycam.errors import UsageError
from device.sealing.pki import OFFICER_ID_RE

from .i18n import current_locale

CSRF_TIME_LIMIT = dt.timedelta(hours=2)
RETENTION_CLASSES = ("", "patrol", "review", "case", "art13")
ID_MAX = 2 ** 31 - 1  # largest row id (grants, holds) in both indexes: PostgreSQL ``integer``, within SQLite's 64 bits
FIRST_DAY = dt.date(2000, 1, 1)  # dates a form takes: no footage before, and room for a century's retention
LAST_DAY = dt.date(2100, 12, 31)


class NoFileUpload(UsageError):
    """A form field arrived as an uploaded file; no console form takes files (HTTP 400)."""


def day_in_range(form, field) -> None:
    """WTForms validator: a date field's day lies in FIRST_DAY..LAST_DAY (else dates overflow downstream)."""
    if field.data is not None and not FIRST_DAY <= field.data <= LAST_DAY:
        raise v.ValidationError(f"{FIRST_DAY.isoformat()} .. {LAST_DAY.isoformat()}")


def row_id() -> list:
    """Validators of a row id field: required, 1..ID_MAX."""
    return [v.InputRequired(), v.NumberRange(min=1, max=ID_MAX)]


class FormData:
    """aiohttp's MultiDict as the ``getlist`` mapping WTForms reads."""

    def __init__(self, multidict) -> None:
        self._md = multidict

    def __iter__(self):
        return iter(self._md)

    def __len__(self) -> int:
        return len(self._md)

    def __contains__(self, key: str) -> bool:
        return key in self._md

    def getlist(self, key: str) -> list[Any]:
        return self._md.getall(key, [])


class ConsoleForm(Form):
    class Meta:
        csrf = True
        csrf_class = SessionCSRF
        csrf_time_limit = CSRF_TIME_LIMIT

        def get_translations(self, form):  # WTForms' own messages, in the page's language
            return get_translations(["zh"] if current_locale.get() == "zh_CN" else ["en"])


class SearchForm(Form):
    """A GET form: no CSRF (it changes nothing; the search itself is audited)."""

    class Meta:
        def get_translations(self, form):
            return get_translations(["zh"] if current_locale.get() == "zh_CN" else ["en"])

    sub_unit = StringField(filters=[lambda x: x.strip() if x else None])
    device = StringField(filters=[lambda x: x.strip() if x else None])
    officer = StringField(filters=[lambda x: x.strip() if x else None])
    party = StringField(filters=[lambda x: x.strip() if x else None])
    case_number = StringField(filters=[lambda x: x.strip() if x else None])
    cause = StringField(filters=[lambda x: x.strip() if x else None])
    act_type = StringField(filters=[lambda x: x.strip() if x else None])
    mark = StringField(filters=[lambda x: x.strip() if x else None])
    event = StringField(filters=[lambda x: x.strip() if x else None])
    retention_class = SelectField(choices=[(c, c) for c in RETENTION_CLASSES], default="")
    since = StringField(filters=[lambda x: x.strip() if x else None])
    until = StringField(filters=[lambda x: x.strip() if x else None])


class LoginForm(ConsoleForm):
    username = StringField(validators=[v.InputRequired(), v.Length(max=64)])
    password = PasswordField(validators=[v.InputRequired(), v.Length(max=1024)])
    totp = StringField(validators=[v.Optional(), v.Regexp(r"^\d{6}$")])


class RequestForm(ConsoleForm):
    grantee = StringField(validators=[v.Optional(), v.Length(max=64)])
    case_number = StringField(validators=[v.Optional(), v.Length(max=200)])
    segments = TextAreaField(validators=[v.Optional(), v.Length(max=20000)])
    actions = SelectMultipleField(choices=[("view", "view"), ("export", "export")], default=["view"],
                                  validators=[v.InputRequired()])
    reason = TextAreaField(validators=[v.InputRequired(), v.Length(max=2000)])
    hours = IntegerField(default=24, validators=[v.InputRequired(), v.NumberRange(min=1, max=24 * 90)])


class DecideForm(ConsoleForm):
    decision = SelectField(choices=[("approve", "approve"), ("refuse", "refuse")], validators=[v.InputRequired()])
    totp = StringField(validators=[v.Optional(), v.Regexp(r"^\d{6}$")])
    note = StringField(validators=[v.Optional(), v.Length(max=2000)])


class RevokeForm(ConsoleForm):
    reason = StringField(validators=[v.InputRequired(), v.Length(max=2000)])


class AuditFilterForm(Form):
    actor = StringField(filters=[lambda x: x.strip() if x else None])
    case = StringField(filters=[lambda x: x.strip() if x else None])
    segment = StringField(filters=[lambda x: x.strip() if x else None])


class LabelForm(ConsoleForm):
    segments = TextAreaField(validators=[v.InputRequired(), v.Length(max=20000)])
    party = StringField(validators=[v.Optional(), v.Length(max=200)])
    cause = StringField(validators=[v.Optional(), v.Length(max=200)])


class HoldForm(ConsoleForm):
    reason = StringField(validators=[v.InputRequired(), v.Length(max=2000)])


class ReleaseForm(ConsoleForm):
    hold = IntegerField(validators=row_id())


class _Get(Form):
    class Meta:
        def get_translations(self, form):
            return get_translations(["zh"] if current_locale.get() == "zh_CN" else ["en"])


class MisuseForm(_Get):
    officer = StringField(validators=[v.InputRequired(), v.Length(max=64)])
    day = DateField(validators=[v.InputRequired(), day_in_range])
    start = TimeField(default=dt.time(8, 30), validators=[v.Optional()])
    end = TimeField(default=dt.time(17, 30), validators=[v.Optional()])
    late_minutes = IntegerField(default=30, validators=[v.Optional(), v.NumberRange(min=0, max=24 * 60)])
    gap_minutes = IntegerField(default=20, validators=[v.Optional(), v.NumberRange(min=1, max=24 * 60)])


class ReviewForm(ConsoleForm):
    """Draw a sample (archive/review.py files the view request for it)."""

    since = DateField(validators=[v.InputRequired(), day_in_range])
    until = DateField(validators=[v.InputRequired(), day_in_range])
    size = IntegerField(default=10, validators=[v.InputRequired(), v.NumberRange(min=1, max=200)])
    officer = StringField(filters=[lambda x: x.strip() if x else None])
    sub_unit = StringField(filters=[lambda x: x.strip() if x else None])
    mark = StringField(filters=[lambda x: x.strip() if x else None])


class FindingForm(ConsoleForm):
    grant = IntegerField(validators=row_id())
    segment = StringField(validators=[v.InputRequired(), v.Length(min=64, max=64)])
    result = SelectField(choices=[("conforms", "conforms"), ("problem", "problem")], validators=[v.InputRequired()])
    note = StringField(validators=[v.InputRequired(), v.Length(max=2000)])


class CheckoutForm(ConsoleForm):
    """Art. 8: the recorder in a bay goes next to a certified officer (the dock checks the certificate)."""

    dock = IntegerField(validators=[v.InputRequired(), v.NumberRange(min=0, max=255)])
    bay = IntegerField(validators=[v.InputRequired(), v.NumberRange(min=1, max=64)])
    officer = StringField(validators=[v.InputRequired(), v.Regexp(OFFICER_ID_RE)])


def bind(form_class: type[Form], formdata, *, secret: bytes, session) -> Form:
    """``form_class`` bound to POSTed ``formdata`` (or None), CSRF tied to ``session``.

    Raises NoFileUpload when any part of ``formdata`` is an uploaded file
    (a multipart POST with a file field): no console form takes one."""
    if formdata is not None:
        for name, value in formdata.items():
            if isinstance(value, FileField):
                raise NoFileUpload(f"{name}: this form takes no files")
    return form_class(FormData(formdata) if formdata is not None else None,
                      meta={"csrf_secret": secret, "csrf_context": session})
