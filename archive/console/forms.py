"""The console's forms (WTForms), with WTForms' session CSRF on every form that changes something.

A form is bound with :func:`bind`: the POSTed fields (aiohttp's MultiDict,
adapted to WTForms' ``getlist``), the app's CSRF secret and the visitor's
session (aiohttp-session), so the token lives in the encrypted session
cookie and expires after :data:`CSRF_TIME_LIMIT`.  Field labels here are
catalogue msgids for error messages (:func:`problems` names the field in
the page's language); templates write the visible labels themselves.  Text
inputs are stripped alike everywhere; coded fields are select lists of
archive/console/labels.py; date ranges are Beijing dates, both days included.
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

from . import labels
from .i18n import current_locale, gettext
from .i18n import lazy_gettext as _  # labels and messages, translated when shown

CSRF_TIME_LIMIT = dt.timedelta(hours=2)
ID_MAX = 2 ** 31 - 1  # largest row id (grants, holds) in both indexes: PostgreSQL ``integer``, within SQLite's 64 bits
FIRST_DAY = dt.date(2000, 1, 1)  # dates a form takes: no footage before, and room for a century's retention
LAST_DAY = dt.date(2100, 12, 31)


class NoFileUpload(UsageError):
    """A form field arrived as an uploaded file; no console form takes files (HTTP 400)."""


def day_in_range(form, field) -> None:
    """WTForms validator: a date field's day lies in FIRST_DAY..LAST_DAY (else dates overflow downstream)."""
    if field.data is not None and not FIRST_DAY <= field.data <= LAST_DAY:
        raise v.ValidationError(gettext("a day from %(first)s to %(last)s") % {
            "first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()})


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


def _strip(text):
    """Text inputs are trimmed the same everywhere (a case number typed with a
    trailing space is the same case); empty becomes None."""
    return (text.strip() or None) if isinstance(text, str) else text


def _not_before_since(form: Form, field) -> None:
    """A date range's ``until`` (a day included) may equal but not precede ``since``."""
    if field.data and form.since.data and field.data < form.since.data:
        raise v.ValidationError(_("The end date is before the start date."))


class SearchForm(Form):
    """A GET form: no CSRF (it changes nothing; the search itself is audited).
    The coded fields are select lists showing the labels the results show;
    ``since``/``until`` are Beijing dates, both days included (queries.day_bounds)."""

    class Meta:
        def get_translations(self, form):
            return get_translations(["zh"] if current_locale.get() == "zh_CN" else ["en"])

    sub_unit = StringField(_("Sub-unit"), filters=[_strip])
    device = StringField(_("Device"), filters=[_strip])
    officer = StringField(_("Officer"), filters=[_strip])
    party = StringField(_("Party"), filters=[_strip])
    case_number = StringField(_("Case number"), filters=[_strip])
    cause = StringField(_("Cause of action"), filters=[_strip])
    act_type = SelectField(_("Kind of act"), choices=labels.choices(labels.ACT_TYPES, anything=_("any")), default="")
    mark = SelectField(_("Mark"), choices=labels.choices(labels.MARKS, anything=_("any")), default="")
    event = SelectField(_("Event"), choices=labels.choices(labels.EVENTS, anything=_("any")), default="")
    retention_class = SelectField(_("Retention class"),
                                  choices=labels.choices(labels.RETENTION_CLASSES, anything=_("any")), default="")
    since = DateField(_("From (Beijing date)"), validators=[v.Optional(), day_in_range])
    until = DateField(_("To (Beijing date, included)"), validators=[v.Optional(), day_in_range, _not_before_since])


def problems(form: Form) -> list[str]:
    """Each field error as "label: message" in the page's language (an expired
    or missing CSRF token as the one message that says to reload)."""
    out = []
    for name, field in form._fields.items():
        if not field.errors:
            continue
        if name == "csrf_token":
            out.append(gettext("The form has expired; reload the page."))
            continue
        for e in field.errors:
            out.append(gettext("%(field)s: %(problem)s", field=field.label.text, problem=e))
    return out


class LoginForm(ConsoleForm):
    username = StringField(validators=[v.InputRequired(), v.Length(max=64)])
    password = PasswordField(validators=[v.InputRequired(), v.Length(max=1024)])
    totp = StringField(validators=[v.Optional(), v.Regexp(r"^\d{6}$")])


class _MultipleChoice(SelectMultipleField):
    """SelectMultipleField whose refusal of an unknown value is a catalogue message
    (WTForms' own has no Chinese translation)."""

    def pre_validate(self, form) -> None:
        known = {str(value) for value, _label in self.choices}
        unknown = [str(x) for x in self.data or () if str(x) not in known]
        if unknown:
            raise v.ValidationError(gettext("not one of the choices: %(values)s", values="、".join(unknown)))


class RequestForm(ConsoleForm):
    grantee = StringField(_("For (username; empty: yourself)"), filters=[_strip],
                          validators=[v.Optional(), v.Length(max=64)])
    case_number = StringField(_("Case number"), filters=[_strip], validators=[v.Optional(), v.Length(max=200)])
    segments = TextAreaField(_("Or segments (digests or names, one per line)"),
                             validators=[v.Optional(), v.Length(max=20000)])
    actions = _MultipleChoice(_("For what"), choices=[("view", _("view")), ("export", _("export"))],
                                  default=["view"], validators=[v.InputRequired()])
    reason = TextAreaField(_("Reason (Art. 19)"), filters=[_strip], validators=[v.DataRequired(), v.Length(max=2000)])
    hours = IntegerField(_("Hours"), default=24, validators=[v.InputRequired(), v.NumberRange(min=1, max=24 * 90)])


class DecideForm(ConsoleForm):
    decision = SelectField(_("Decision"), choices=[("approve", _("Approve")), ("refuse", _("Refuse"))],
                           validators=[v.InputRequired()])
    totp = StringField(_("Authenticator code"), validators=[v.Optional(), v.Regexp(r"^\d{6}$", message=_(
        "Enter the 6-digit code."))])
    note = StringField(_("Note"), filters=[_strip], validators=[v.Optional(), v.Length(max=2000)])


class RevokeForm(ConsoleForm):
    reason = StringField(_("Reason"), filters=[_strip], validators=[v.DataRequired(), v.Length(max=2000)])


class AuditFilterForm(Form):
    """A GET form: person, case, segment digest (at least 8 hex digits), Beijing
    dates (both included) and ``before`` (a sequence number: the next page)."""

    class Meta:
        def get_translations(self, form):
            return get_translations(["zh"] if current_locale.get() == "zh_CN" else ["en"])

    actor = StringField(_("Person (username)"), filters=[_strip])
    case = StringField(_("Case number"), filters=[_strip])
    segment = StringField(_("Segment digest"), filters=[_strip, lambda x: x.lower() if x else x],
                          validators=[v.Optional(), v.Regexp(r"^[0-9a-f]{8,64}$", message=_(
                              "at least 8 hexadecimal digits of the digest"))])
    since = DateField(_("From (Beijing date)"), validators=[v.Optional(), day_in_range])
    until = DateField(_("To (Beijing date, included)"), validators=[v.Optional(), day_in_range, _not_before_since])
    before = IntegerField(_("Older than entry No."), validators=[v.Optional(), v.NumberRange(min=1, max=ID_MAX)])


class LabelForm(ConsoleForm):
    segments = TextAreaField(_("Segments (digests or names, one per line)"),
                             validators=[v.DataRequired(), v.Length(max=20000)])
    party = StringField(_("Party"), filters=[_strip], validators=[v.Optional(), v.Length(max=200)])
    cause = StringField(_("Cause of action"), filters=[_strip], validators=[v.Optional(), v.Length(max=200)])


class HoldForm(ConsoleForm):
    reason = StringField(_("Reason"), filters=[_strip], validators=[v.DataRequired(), v.Length(max=2000)])


class ReleaseForm(ConsoleForm):
    hold = IntegerField(_("Legal hold"), validators=row_id())


class _Get(Form):
    class Meta:
        def get_translations(self, form):
            return get_translations(["zh"] if current_locale.get() == "zh_CN" else ["en"])


class MisuseForm(_Get):
    officer = StringField(_("Officer"), filters=[_strip], validators=[v.DataRequired(), v.Length(max=64)])
    day = DateField(_("Shift date (Beijing time)"), validators=[v.InputRequired(), day_in_range])
    start = TimeField(_("Duty start"), default=dt.time(8, 30), validators=[v.Optional()])
    end = TimeField(_("Duty end"), default=dt.time(17, 30), validators=[v.Optional()])
    late_minutes = IntegerField(_("Late after (minutes)"), default=30,
                                validators=[v.Optional(), v.NumberRange(min=0, max=24 * 60)])
    gap_minutes = IntegerField(_("Gap longer than (minutes)"), default=20,
                               validators=[v.Optional(), v.NumberRange(min=1, max=24 * 60)])


class ReviewForm(ConsoleForm):
    """Draw a sample (archive/review.py files the view request for it)."""

    since = DateField(_("From (Beijing date)"), validators=[v.InputRequired(), day_in_range])
    until = DateField(_("To (Beijing date, included)"), validators=[v.InputRequired(), day_in_range,
                                                                    _not_before_since])
    size = IntegerField(_("Sample size"), default=10, validators=[v.InputRequired(), v.NumberRange(min=1, max=200)])
    officer = StringField(_("Officer"), filters=[_strip])
    sub_unit = StringField(_("Sub-unit"), filters=[_strip])
    mark = SelectField(_("Mark"), choices=labels.choices(labels.MARKS, anything=_("any")), default="")


class FindingForm(ConsoleForm):
    grant = IntegerField(_("Request"), validators=row_id())
    segment = StringField(_("Segment"), validators=[v.InputRequired(), v.Length(min=64, max=64)])
    result = SelectField(_("Finding"), choices=[("conforms", _("conforms")), ("problem", _("problem found"))],
                         validators=[v.InputRequired()])
    note = StringField(_("Note"), filters=[_strip], validators=[v.DataRequired(), v.Length(max=2000)])


class CheckoutForm(ConsoleForm):
    """Art. 8: the recorder in a bay goes next to a certified officer (the dock checks the certificate)."""

    dock = IntegerField(_("Dock"), validators=[v.InputRequired(), v.NumberRange(min=0, max=255)])
    bay = IntegerField(_("Bay"), validators=[v.InputRequired(), v.NumberRange(min=1, max=64)])
    officer = StringField(_("Officer number"), filters=[_strip], validators=[v.InputRequired(), v.Regexp(OFFICER_ID_RE)])


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
