"""Locale choice: the language cookie (set by the switcher), then Accept-Language, then zh-TW."""

from __future__ import annotations

from flask import current_app, request

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
