"""Every message the code and templates show has its Traditional Chinese translation."""

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "app/translations/zh_Hant_TW/LC_MESSAGES/messages.po"


def test_every_message_has_a_zh_tw_translation(tmp_path):
    template = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), "-q", "extract", "-F", "babel.cfg", "-o", str(template), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with template.open("rb") as extracted, CATALOG.open("rb") as translated:
        wanted, catalog = read_po(extracted), read_po(translated)
    missing = [
        message.id for message in wanted
        if message.id and not getattr(catalog.get(message.id, context=message.context), "string", None)
    ]
    assert missing == []


def _catalog():
    with CATALOG.open("rb") as translated:
        return read_po(translated)


def _msgstrs(message) -> list[str]:
    strings = message.string if isinstance(message.string, (list, tuple)) else [message.string]
    return [string for string in strings if string]


def test_the_catalog_follows_the_glossary():
    """docs/glossary.md's Forbidden column: no msgstr uses a term the glossary replaced with another."""
    forbidden = []
    for line in (ROOT / "docs/glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and cells[2] not in ("Forbidden", "---"):
            forbidden += [term.strip() for term in cells[2].split(",") if term.strip()]
    assert "帳戶" in forbidden and "QR 碼" in forbidden  # the table was read
    found = [(term, string) for message in _catalog() if message.id for string in _msgstrs(message)
             for term in forbidden if term in string]
    assert found == []


def test_no_half_width_space_follows_full_width_punctuation():
    found = [string for message in _catalog() if message.id for string in _msgstrs(message)
             if re.search(r"[。，；：！？、」）] ", string)]
    assert found == []


def test_library_messages_that_reach_a_person_are_ours_and_translated():
    """Werkzeug's HTTP descriptions and Authlib's OAuth error descriptions are English only: each one a person
    could meet is answered with a message of app/errors.py, and that message has its zh-TW translation."""
    from authlib.oauth2 import OAuth2Error
    from authlib.oauth2.rfc6749 import errors as rfc6749_errors  # noqa: F401 - the subclasses, imported
    from authlib.oauth2.rfc6750 import errors as rfc6750_errors  # noqa: F401
    from authlib.oidc.core import errors as oidc_errors  # noqa: F401
    from werkzeug.exceptions import default_exceptions

    from app import errors

    catalog = _catalog()

    def translated(msgid: str) -> bool:
        return bool(getattr(catalog.get(msgid), "string", None))

    for status, exception in default_exceptions.items():
        ours = errors.HTTP_MESSAGES.get(
            status, errors.HTTP_OTHER_SERVER_ERROR if status >= 500 else errors.HTTP_OTHER_CLIENT_ERROR)
        assert ours != exception.description and translated(ours), status

    def subclasses(kind):
        for sub in kind.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = {kind.error for kind in subclasses(OAuth2Error) if getattr(kind, "error", None)}
    assert {"invalid_client", "invalid_request"} <= codes
    for code in codes:
        assert translated(errors.OAUTH_MESSAGES.get(code, errors.OAUTH_OTHER)), code
