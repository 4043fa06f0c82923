"""SP-API-WEB-01's views over ``services.sp_web``: the agency's form, MoCert's page, and the page's calls.

The form arrives by a cross-site POST, so without the person's MoCert cookies (SameSite=Lax). The pages
it answers must write nothing to the session: a Set-Cookie would replace the person's MoCert session with
an empty one. So they carry no CSRF token (they have no form of ours; the page's calls carry its own
token, and the blueprint is exempt), and no answer of this blueprint saves the session, an error page's
neither. Nothing on it is cached: the page holds its token, and the answer it posts holds the person's ID.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from flask import current_app, jsonify, render_template, request, session

from twfido import codes

from ..api import json_body
from ..audit import Tags
from ..extensions import limiter
from ..oidc import national_id as oidc_national_id
from ..services import devices
from ..services.refusals import Refusal
from ..services.sp_web import OPERATION, PostBack
from ..wiring import parts
from . import web_bp


def _phone_limit() -> str:
    return current_app.config["PHONE_RATE_LIMIT"]


@web_bp.after_request
def _not_cached_and_no_cookie(response):
    response.headers["Cache-Control"] = "no-store"
    # Whatever answers here (an error page too: a 429, a 400 for unstorable text, a 500) leaves the session
    # cookie alone: Flask saves the session after this, and only a modified one.
    session.modified = False
    return response


@web_bp.post("/moise/sp/fidoRedirect/web")
@limiter.limit(_phone_limit)  # each one is a row and a QR code, as a login request is
def web_form():
    try:
        started = parts().sp_web.start(request.form)
    except Refusal as refusal:  # not shown to be the agency's, or no callback: never posted anywhere
        return render_template(
            "sp_web_refused.html", error_code=codes.error_code(OPERATION, refusal.code),
            description=codes.CODES[refusal.code],
        ), 400
    if isinstance(started, PostBack):
        return _post_back_page(started)
    sp_request = started.sp_request
    qr = base64.b64encode(devices.qr_svg(started.phone_url).encode()).decode("ascii")
    return render_template(
        "sp_web.html",
        sp_request=sp_request,
        agency=sp_request.agency,
        sign_data=(sp_request.sign_info or {}).get("sign_data") if sp_request.op_code == "SIGN" else None,
        qr_src=f"data:image/svg+xml;base64,{qr}",
        callback_origin="{0.scheme}://{0.netloc}".format(urlsplit(sp_request.agency.callback_url)),
        page=started,
        expires_in=int((sp_request.expires_at - sp_request.created_at).total_seconds()),
    )


def _post_back_page(post: PostBack):
    return render_template("sp_web_post.html", post=post, description=codes.CODES.get(post.code))


@web_bp.post("/api/v1/sp-web/status")
def web_status():
    return jsonify(parts().sp_web.status(json_body().get("token")))


@web_bp.post("/api/v1/sp-web/release")
@limiter.limit(_phone_limit)
def web_release():
    """The person's national ID for the agency: confirmed as the consent page confirms it, then the answer."""
    body = json_body()
    web = parts().sp_web
    sp_request = web.awaiting_id(body.get("token"))
    asker = oidc_national_id.Asker(
        Tags.SP_NATIONAL_ID_CONFIRMED, Tags.SP_NATIONAL_ID_MISMATCH, Tags.SP_NATIONAL_ID_LOCKED,
        web.audit_facts(sp_request),
    )
    try:
        national_id = oidc_national_id.confirm_typed(sp_request.account, body.get("id_num"), asker)
    except Refusal as refusal:
        if refusal.case != "locked":  # missing, invalid, mismatch: the page says so and asks again
            raise
        post = web.unconfirmed(sp_request)
    else:
        post = web.release(sp_request, national_id)
    return jsonify(status="released" if post.code == codes.SUCCESS else "refused", post=post.as_json())
