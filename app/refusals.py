"""What each refusal means over HTTP: its status and its message, zh-TW and English, written once.

Services raise :class:`~app.services.refusals.Refusal` (a code and its facts); the views and the error
handler ask :func:`answer` for the status, the translated message and the JSON body. The JSON API answers
``{"error": code, "message": text, ...}`` with the fields an entry lists in ``shown``; a page shows the
message in its own layout. A code missing here is a bug, and ``tests/app/test_refusals.py`` fails on it.

Entries are keyed ``code`` or ``(code, case)``; ``(None, case)`` is the answer for a code of that family
the table does not list (a WebAuthn or card reason added in a later release).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import jsonify
from flask_babel import gettext

from .services.refusals import Refusal


def N_(text: str) -> str:
    """Marks a message for extraction (``pybabel extract`` knows ``N_``); it is translated when shown."""
    return text


@dataclass(frozen=True)
class Answer:
    status: int
    message: str  # the English msgid, ``%(name)s`` placeholders filled from the refusal's params
    shown: tuple[str, ...] = ()  # params the JSON body carries beside error and message


Key = str | tuple[str | None, str | None]

ANSWERS: dict[Key, Answer] = {
    # -- the door: bodies and requests ------------------------------------------------------------------
    "malformed_input": Answer(400, N_("The request body must be a JSON object.")),
    # -- sessions and staff ------------------------------------------------------------------------------
    # -- card login ----------------------------------------------------------------------------------------
    # -- registration, email and contact -----------------------------------------------------------------
    # -- devices and binding --------------------------------------------------------------------------------
    # -- phone login -------------------------------------------------------------------------------------------
    # -- administration --------------------------------------------------------------------------------------
    # -- OpenID Connect clients ------------------------------------------------------------------------------
}


def lookup(refusal: Refusal) -> Answer:
    """The table's entry for ``refusal``; ``KeyError`` when there is none (a bug, answered as a 500)."""
    for key in ((refusal.code, refusal.case), refusal.code, (None, refusal.case)):
        if key in ANSWERS and (key != (None, None)):
            return ANSWERS[key]
    raise KeyError(f"no answer for the refusal {refusal!r}")


def message(refusal: Refusal) -> str:
    """The refusal's message in the request's language."""
    return gettext(lookup(refusal).message, **refusal.params)


def body(refusal: Refusal) -> dict:
    entry = lookup(refusal)
    shown = {name: refusal.params[name] for name in entry.shown if name in refusal.params}
    return {"error": refusal.code, "message": gettext(entry.message, **refusal.params), **shown}


def json_response(refusal: Refusal):
    response = jsonify(body(refusal))
    response.status_code = lookup(refusal).status
    return response
