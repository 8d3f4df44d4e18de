"""Keep the console's gettext catalogues in step with its templates and code.

    python -m archive.console.catalogue      # re-extract msgids, rewrite both .po files

Messages are extracted with Babel (the Jinja2 extractor for templates,
Babel's Python extractor for ``_``/``lazy_gettext`` in code); the Simplified
Chinese text of each msgid comes from ``zh_CN.tsv`` (msgid TAB msgstr, one a
line; a plural msgid keeps its singular form as the key).  The English
catalogue has empty msgstrs (the msgids are English).  A msgid without a
Chinese text is an error naming it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import write_po

from .i18n import DOMAIN, LOCALES, catalogue_path

HERE = Path(__file__).resolve().parent
METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}


def extracted() -> dict[str | tuple[str, str], list[tuple[str, int]]]:
    found: dict = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            HERE, METHOD_MAP, OPTIONS, keywords=KEYWORDS):
        if filename.startswith("catalogue"):
            continue
        key = message if isinstance(message, str) else tuple(message)
        found.setdefault(key, []).append((filename, lineno))
    return found


def chinese() -> dict[str, str]:
    out = {}
    for n, line in enumerate((HERE / "zh_CN.tsv").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.count("\t") != 1:
            raise ValueError(f"zh_CN.tsv:{n}: msgid TAB msgstr expected")
        key, text = line.split("\t")
        out[key] = text
    return out


def build() -> None:
    messages = extracted()
    zh = chinese()
    missing = [m if isinstance(m, str) else m[0] for m in messages if (m if isinstance(m, str) else m[0]) not in zh]
    if missing:
        raise SystemExit("no Chinese text in zh_CN.tsv for: " + "; ".join(missing))
    for locale in LOCALES:
        cat = Catalog(locale=locale, domain=DOMAIN, project="bodycam console", charset="utf-8")
        for key, where in messages.items():
            if isinstance(key, tuple):
                text = (zh[key[0]], ) if locale == "zh_CN" else ("", "")
                cat.add(key, text if locale != "zh_CN" else (zh[key[0]],), locations=where)
            else:
                cat.add(key, zh[key] if locale == "zh_CN" else "", locations=where)
        path = catalogue_path(locale)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            write_po(f, cat, width=100, omit_header=False)
        print(f"{path}: {len(cat)} messages", file=sys.stderr)


if __name__ == "__main__":
    build()
