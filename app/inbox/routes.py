"""The inbox page and the phone's calls: open it with the passkey, list, answer, subscribe to notices."""

from __future__ import annotations

from flask import current_app, jsonify, make_response, render_template, request

from flask_limiter.util import get_remote_address

from ..api import json_body
from ..extensions import limiter
from ..services.tokens import digest
from ..wiring import parts
from . import bp

# How often an open inbox asks for its list (the page's; the rate limit allows it with room).
POLL_SECONDS = 4


def _phone_limit() -> str:
    return current_app.config["PHONE_RATE_LIMIT"]


# A poll every POLL_SECONDS is 15 a minute per open inbox: counted per inbox token, so that phones behind one
# carrier's address do not share it; and per address with room for many of them, against made-up tokens.
POLL_LIMIT_PER_INBOX = "30/minute"
POLL_LIMIT_PER_ADDRESS = "1200/minute"


def _inbox_key() -> str:
    token = _token()
    return f"inbox:{digest(token)}" if token else f"address:{get_remote_address()}"


def _token() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


@bp.get("/m/inbox")
def inbox_page():
    notices = parts().push_notices
    return render_template("phone_inbox.html", poll_seconds=POLL_SECONDS,
                           push_key=notices.application_server_key or "")


@bp.get("/m/inbox-sw.js")
def service_worker():
    # Served under /m/ so that it may control /m/inbox (a worker's scope is at most its own directory), and
    # rendered, so that its notices speak the phone's language.
    response = make_response(render_template("inbox_sw.js"))
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = "no-cache"  # a new release's worker is picked up at once
    return response


@bp.post("/api/v1/m/inbox/options")
@limiter.limit(_phone_limit)
def options():
    return jsonify(parts().inbox.options())


@bp.post("/api/v1/m/inbox/open")
@limiter.limit(_phone_limit)
def open_inbox():
    body = json_body()
    opened = parts().inbox.open(body.get("opening"), body.get("credential"))
    notices = parts().push_notices
    return jsonify(
        inbox_token=opened.token,
        expires_at=opened.expires_at.isoformat(),
        device={"name": opened.device.name},
        push={"enabled": notices.enabled, "application_server_key": notices.application_server_key},
    )


@bp.get("/api/v1/m/inbox")
@limiter.limit(POLL_LIMIT_PER_INBOX, key_func=_inbox_key)
@limiter.limit(POLL_LIMIT_PER_ADDRESS)
def pending():
    return jsonify(parts().inbox.pending(_token()))


@bp.post("/api/v1/m/inbox/requests/<public_id>/options")
@limiter.limit(_phone_limit)
def request_options(public_id: str):
    return jsonify(parts().inbox.request_options(_token(), public_id))


@bp.post("/api/v1/m/inbox/requests/<public_id>/complete")
@limiter.limit(_phone_limit)
def request_complete(public_id: str):
    parts().inbox.approve(_token(), public_id, json_body().get("credential"))
    return jsonify(status="approved")


@bp.post("/api/v1/m/inbox/requests/<public_id>/decline")
@limiter.limit(_phone_limit)
def request_decline(public_id: str):
    parts().inbox.decline(_token(), public_id)
    return jsonify(status="declined")


@bp.post("/api/v1/m/inbox/push-subscription")
@limiter.limit(_phone_limit)
def push_subscription():
    parts().inbox.subscribe(_token(), json_body().get("subscription"))
    return jsonify(status="subscribed"), 201
