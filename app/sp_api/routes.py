"""Thin views over ``services.sp_requests``: the agencies' five operations, the phone's pages (a request,
the scanner) and its three calls."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, jsonify, make_response, redirect, render_template, request, url_for

from twfido import codes

from ..api import json_body
from ..extensions import limiter
from ..input_checks import json_value
from ..services.refusals import Refusal
from ..services.sp_requests import Answer
from ..wiring import parts
from . import bp, phone_bp

OPERATIONS: dict[str, Callable[[dict, str | None], Answer]] = {
    "getSpTicket": lambda body, address: parts().sp_requests.get_sp_ticket(body, address),
    "requestAthOrSignPush": lambda body, address: parts().sp_requests.request_push(body, address),
    "getAthOrSignResult": lambda body, address: parts().sp_requests.result(body, address),
    "doBatchSigning": lambda body, address: parts().sp_requests.batch_signing(body, address),
    "checkDeviceStatus": lambda body, address: parts().sp_requests.device_status(body, address),
}
# What is not a request at all (no JSON object) is the only answer that is not HTTP 200.
NOT_A_REQUEST = 400


def _refusal_limit() -> str:
    return current_app.config["SP_API_REFUSAL_RATE_LIMIT"]


def _was_refused(response) -> bool:
    """Whether the limiter counts this answer: a refusal, not a ticket, a result or "not yet"."""
    body = response.get_json(silent=True) or {}
    return body.get("error_code") not in (codes.SUCCESS, codes.PENDING)


def _over_the_limit(limit):
    operation = (request.view_args or {}).get("operation", "")
    return make_response(_envelope(operation, "", "SP_RATE_LIMITED", {}, status=429))


@bp.post("/moise/sp/<operation>")
@limiter.limit(_refusal_limit, deduct_when=_was_refused, on_breach=_over_the_limit)
def operation_call(operation: str):
    if operation not in OPERATIONS:
        return _envelope(operation, "", "PM_INV_NF", {}, status=404)
    try:
        body = json_value(request.get_data(cache=True)) if request.is_json else None
    except Refusal:  # not JSON, too deep, or text no database can store
        body = None
    if not isinstance(body, dict):
        return _envelope(operation, "", "PM_INV_NF", {}, status=NOT_A_REQUEST)
    transaction_id = body.get("transaction_id") if isinstance(body.get("transaction_id"), str) else ""
    try:
        answer = OPERATIONS[operation](body, request.remote_addr)
    except Refusal as refusal:
        return _envelope(operation, transaction_id, refusal.code, {})
    return _envelope(operation, transaction_id, answer.code, answer.result)


def _envelope(operation: str, transaction_id: str, code: str, result: dict, *, status: int = 200):
    known = operation in codes.INTERFACES
    return jsonify(
        transaction_id=transaction_id[:64],
        error_code=codes.error_code(operation, code) if known else code,
        error_message=codes.error_message(code),
        result=result,
    ), status


# -- the phone's side ---------------------------------------------------------------------------------------


@phone_bp.get("/m/sp")
def phone_request_page():
    """An agency's request as the phone shows it: scanned (from /m/scan), pushed, or opened by the agency's
    own mobile page (MWEB2APP: ``rtn_url`` and ``rtn_val`` say where to go back; the options call checks it)."""
    sp_ticket = request.args.get("sp_ticket", "")
    if not sp_ticket:
        return redirect(url_for(".phone_scan_page"))
    return render_template("phone_sp_request.html", sp_ticket=sp_ticket,
                           rtn_url=request.args.get("rtn_url", ""), rtn_val=request.args.get("rtn_val", ""))


@phone_bp.get("/m/scan")
def phone_scan_page():
    """The phone reads an agency's QR code with its camera, or takes the request code pasted."""
    return render_template("phone_scan.html")


def _phone_limit() -> str:
    return current_app.config["PHONE_RATE_LIMIT"]


@phone_bp.post("/api/v1/m/sp-requests/options")
@limiter.limit(_phone_limit)
def phone_options():
    body = json_body()
    return jsonify(parts().sp_requests.phone_options(body.get("sp_ticket"), return_url=body.get("rtn_url")))


@phone_bp.post("/api/v1/m/sp-requests/complete")
@limiter.limit(_phone_limit)
def phone_complete():
    body = json_body()
    parts().sp_requests.approve(body.get("sp_ticket"), body.get("credential"))
    return jsonify(status="approved")


@phone_bp.post("/api/v1/m/sp-requests/decline")
@limiter.limit(_phone_limit)
def phone_decline():
    parts().sp_requests.decline(json_body().get("sp_ticket"))
    return jsonify(status="declined")
