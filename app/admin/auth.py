"""Who is operating: the admin or auditor logged in here, or a service token on the JSON API."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from ..extensions import csrf
from ..services import service_tokens, staff
from ..services.refusals import Refusal

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def current_operator(*, allow_token: bool) -> staff.Operator:
    """The operator of this request; refuses ``invalid_token``, ``login_required`` or ``forbidden``.

    A service token (``Authorization: Bearer mocert_st_…``) needs no CSRF token: no browser sends it by
    itself. A session does: the API's blueprint is exempt from the global check, so it is done here.
    """
    header = request.headers.get("Authorization", "")
    if allow_token and header[:7].lower() == "bearer ":
        operator = service_tokens.operator_for(header[7:].strip())
        if operator is None:
            raise Refusal("invalid_token", case="service_token")
        return operator
    if not current_user.is_authenticated:
        raise Refusal("login_required")
    operator = staff.operator_for_account(current_user)
    if operator is None:
        raise staff.refuse_non_staff(current_user, path=request.path)
    if request.method not in SAFE_METHODS:
        csrf.protect()
    return operator
