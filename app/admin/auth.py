"""Who is operating: the admin or auditor logged in here, or a service token on the JSON API."""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _
from flask_login import current_user

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import csrf, db
from ..services import admin

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def current_operator(*, allow_token: bool) -> admin.Operator:
    """The operator of this request, or a 401/403.

    A service token (``Authorization: Bearer mocert_st_…``) needs no CSRF token: no browser sends it by
    itself. A session does: the API's blueprint is exempt from the global check, so it is done here.
    """
    header = request.headers.get("Authorization", "")
    if allow_token and header[:7].lower() == "bearer ":
        operator = admin.operator_for_token(header[7:].strip())
        if operator is None:
            raise ApiError(401, "invalid_token", _("The service token is unknown, revoked or expired."))
        return operator
    if not current_user.is_authenticated:
        raise ApiError(401, "login_required", _("Please log in first."))
    operator = admin.operator_for_account(current_user)
    if operator is None:
        record(Tags.ADMIN_DENIED, account=current_user, scope="staff", path=request.path[:200])
        db.session.commit()
        raise ApiError(403, "forbidden", _("This page is for administrators."))
    if request.method not in SAFE_METHODS:
        csrf.protect()
    return operator
