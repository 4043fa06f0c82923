"""What a request may carry, checked once at the door for every route.

Text must be storable: PostgreSQL's text and ``json ->>`` cannot hold NUL, and UTF-8 cannot encode a lone
surrogate (JSON's ``"\\ud800"`` makes one). Such text in the URL path, the query string, a form field, a
header, the client credentials of an ``Authorization: Basic`` header or a JSON body is refused with a 400
(``invalid_characters``) before any view runs, so it never reaches a query, a single-use secret or the
audit trail. JSON bodies are also bounded in depth: Python's parser recurses, and 30,000 brackets are a
RecursionError.

:func:`storable` is for text decoded again further in (a query string carried inside JSON), and
:func:`make_storable` for the audit trail, which must record whatever it is given.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from flask import current_app, request
from flask_babel import gettext as _
from werkzeug.exceptions import BadHost, BadRequest

from .services.refusals import Refusal

MAX_JSON_DEPTH = 32  # our bodies are a few levels deep (a WebAuthn credential, a JWKS)
REPLACEMENT = "\ufffd"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class UnstorableText(BadRequest):
    """A 400 for text the database or UTF-8 cannot hold; a JSON error under /api/, a page elsewhere."""

    error_code = "invalid_characters"

    def __init__(self) -> None:
        super().__init__(_("The request contains characters that cannot be stored (NUL or a lone surrogate)."))


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def make_storable(value: Any) -> Any:
    """``value`` with every NUL and lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {make_storable(k) if isinstance(k, str) else k: make_storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [make_storable(item) for item in value]
    return value


def reads_raw_path(view: Callable) -> Callable:
    """Mark a view that decodes its URL path itself and answers any text there in its own protocol (an
    OCSP GET is base64 in the path, and a malformed one gets OCSP's malformedRequest, not a 400)."""
    view.reads_raw_path = True
    return view


def check_request() -> None:
    """``before_request`` for the whole app (registered before CSRF and the rate limits)."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    texts = [] if getattr(view, "reads_raw_path", False) else [request.path]
    texts += [text for pair in request.args.items(multi=True) for text in pair]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        texts += [text for pair in request.form.items(multi=True) for text in pair]
    texts += [value for _name, value in request.headers.items()]  # the user agent is stored, for one
    texts += _basic_credentials()
    if not all(storable(text) for text in texts):
        raise UnstorableText()
    try:
        request.url  # Werkzeug decodes the host's IDNA labels here (Authlib and redirects ask for it)
    except UnicodeError:  # bad punycode (xn--zz): routing took it, the decoding does not
        raise BadHost() from None


def _basic_credentials() -> list[str]:
    """The client id and secret of ``Authorization: Basic``, decoded as RFC 6749 §2.3.1 has them
    (form-urlencoded, then base64): Authlib decodes them strictly as UTF-8, and ``%00`` is a NUL."""
    header = request.headers.get("Authorization", "")
    scheme, _space, value = header.partition(" ")
    if scheme.lower() != "basic":
        return []
    if not value.isascii():
        # Not base64, and not something Authlib ignores: its b64decode raises a ValueError (a 500) for it.
        raise UnstorableText()
    try:
        decoded = base64.b64decode(value.strip()).decode("utf-8")
    except binascii.Error:
        return []  # not base64: Authlib ignores it too
    except UnicodeDecodeError:
        raise UnstorableText() from None
    return [unquote(part) for part in decoded.split(":", 1)]


def json_value(raw: bytes) -> Any:
    """The JSON document in ``raw``; a :class:`Refusal` (a 400) if it is not JSON, nested deeper than
    :data:`MAX_JSON_DEPTH`, or holds unstorable text in a key or a value."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except ValueError:  # includes invalid UTF-8 and integers past Python's 4,300 digits
        raise Refusal("malformed_input") from None
    pending = [(value, 1)]
    while pending:  # iterative: the check itself must not recurse
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str) and not storable(key):
                    raise _unstorable_json()
                pending.append((child, depth + 1))
        elif isinstance(item, str) and not storable(item):
            raise _unstorable_json()
    return value


def _too_deep() -> Refusal:
    return Refusal("json_too_deep", depth=MAX_JSON_DEPTH)


def _unstorable_json() -> Refusal:
    return Refusal(UnstorableText.error_code)
