"""Gettext catalogues of the console (Babel).

Every user-facing string of the console is a msgid (English) looked up in
``locale/<locale>/LC_MESSAGES/console.po``; the Simplified Chinese catalogue
is the default, English the alternative (``/lang/en``).  The ``.po`` files
are compiled to ``.mo`` form in memory on first use (Babel's
``read_po``/``write_mo``), so no build step and no binary in the tree.

The locale of the request being served is :data:`current_locale` (a context
variable set by the console's middleware); :func:`gettext` reads it.
"""

from __future__ import annotations

import contextvars
import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import LazyProxy, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "console"
LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}

current_locale: contextvars.ContextVar[str] = contextvars.ContextVar("console_locale", default=DEFAULT_LOCALE)


def catalogue_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> Translations:
    """The compiled catalogue of ``locale`` (one of :data:`LOCALES`); ValueError otherwise."""
    if locale not in LOCALES:
        raise ValueError(f"locale {locale!r}: one of {', '.join(LOCALES)}")
    with open(catalogue_path(locale), "rb") as f:
        catalog = read_po(f, locale=locale, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def gettext(message: str, **values) -> str:
    """``message`` in the current locale, ``%(name)s`` filled from ``values``."""
    text = translations(current_locale.get()).gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, n: int, **values) -> str:
    text = translations(current_locale.get()).ngettext(singular, plural, n)
    values.setdefault("num", n)
    return text % values


def lazy_gettext(message: str, **values) -> LazyProxy:
    """For module-level names (form choices): translated when shown."""
    return LazyProxy(gettext, message, enable_cache=False, **values)


_ = gettext
