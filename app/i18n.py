"""Locale choice: the language cookie (set by the switcher), then Accept-Language, then zh-TW."""

from __future__ import annotations

from flask import current_app, request
from flask_babel import gettext

from .refusals import N_

LANGUAGE_COOKIE = "mocert_lang"
LANGUAGE_LABELS = {"zh_Hant_TW": "繁體中文", "en": "English"}


def supported_locale(code: str | None) -> str | None:
    if not code:
        return None
    wanted = code.replace("-", "_").lower()
    for locale in current_app.config["LANGUAGES"]:
        if wanted == locale.lower() or wanted.split("_")[0] == locale.split("_")[0].lower():
            return locale
    return None


def select_locale() -> str:
    chosen = supported_locale(request.cookies.get(LANGUAGE_COOKIE))
    if chosen:
        return chosen
    # Accept-Language tags look like zh-TW / zh-Hant / en-US; map them onto what we ship.
    for tag, _quality in request.accept_languages:
        locale = supported_locale(tag)
        if locale:
            return locale
    return current_app.config["BABEL_DEFAULT_LOCALE"]



# What marks a certificate's issuer DN as MOICA's (the demo's "MoCert Demo MOICA" too): shown by the name people
# know, not as the DN (which stays in the audit trail and the API's "issuer").
# MOICA's own unit in its name (iccard/moica.py), not the word "MOICA": the demo's "MoCert Demo MOICA" is no MOICA.
MOICA_MARKERS = ("OU=內政部憑證管理中心",)
MOICA_NAME = N_("Ministry of the Interior Certification Authority")


def issuer_name(dn: str | None) -> str:
    """A card issuer's readable name in the request's language: MOICA's translated, another's common name
    (else organizational unit, else organization), else the DN as it is."""
    if not dn:
        return "—"
    if any(marker in dn for marker in MOICA_MARKERS):
        return gettext(MOICA_NAME)
    parts = dict(part.strip().split("=", 1) for part in dn.split(",") if "=" in part)
    return parts.get("CN") or parts.get("OU") or parts.get("O") or dn
