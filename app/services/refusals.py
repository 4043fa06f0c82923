"""The one way a service says no: a :class:`Refusal` with a stable code and the facts behind it.

A refusal carries no HTTP status and no words: the HTTP layer's table (``app/refusals.py``) gives each code
its status and its message in the person's language, the same for the JSON API and the pages. So a service
can be called from a view, a command or a test alike, and what a refusal means is written down once.
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """``code`` is the API's ``error`` (``"binding_expired"``); ``params`` the facts a message or the body
    may show (``limit=3``). ``case`` tells two refusals of one code apart where they answer differently
    (``card_login_required`` for registration and for binding), and names the family whose fallback answer
    an open-ended code takes (a WebAuthn or card reason the table does not list)."""

    def __init__(self, code: str, *, case: str | None = None, **params: Any) -> None:
        super().__init__(code)
        self.code, self.case, self.params = code, case, params

    def __repr__(self) -> str:
        return f"Refusal({self.code!r}, case={self.case!r}, **{self.params!r})"
