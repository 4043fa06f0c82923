"""The administration API, ``/api/v1/admin``: the console's operations as JSON, for an admin session or a
scoped service token. Views are thin: the services (``staff``, ``account_admin``, ``service_tokens``,
``audit_trail``, ``clients``, ``agencies``) hold the rules, and what they refuse is answered from
``app/refusals.py``."""

from __future__ import annotations

import itertools

from flask import Blueprint, Response, jsonify, request, stream_with_context

from .. import wiring
from ..api import json_body
from ..extensions import csrf
from ..services import account_admin, agencies, audit_trail, clients, service_tokens, staff
from ..services.staff import Operator
from .auth import current_operator
from .query import audit_filter

bp = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")
csrf.exempt(bp)  # checked in current_operator for sessions; a service token is not sent by browsers


@bp.after_request
def _not_stored(response):
    # Answers carry people's data and, once, a new client secret or agency key: no cache keeps them.
    response.headers["Cache-Control"] = "no-store"
    return response


def _operator(scope: str) -> Operator:
    operator = current_operator(allow_token=True)
    operator.require(scope)
    return operator


@bp.get("/me")
def me():
    operator = current_operator(allow_token=True)
    return jsonify(actor=operator.actor, role=operator.role, scopes=sorted(operator.scopes))


# -- accounts and devices -------------------------------------------------------------------------------


@bp.get("/accounts")
def find_accounts():
    operator = _operator(staff.READ)
    return jsonify(accounts=[account_admin.account_summary(a) for a in _find(operator, request.args)])


@bp.post("/accounts/search")
def search_accounts():
    """The same search with the value in the body, so a national ID stays out of URLs and access logs."""
    operator = _operator(staff.READ)
    return jsonify(accounts=[account_admin.account_summary(a) for a in _find(operator, json_body())])


def _find(operator: Operator, query):
    return account_admin.find_accounts(operator, query, national_id_hash=wiring.parts().national_id_hash)


@bp.get("/accounts/<int:account_id>")
def account(account_id: int):
    operator = _operator(staff.READ)
    return jsonify(account=account_admin.account_detail(account_admin.get_account(operator, account_id)))


@bp.post("/accounts/<int:account_id>/lock")
def lock_account(account_id: int):
    operator = _operator(staff.ACCOUNTS_WRITE)
    account = account_admin.get_account(operator, account_id)
    account = account_admin.lock_account(operator, account, json_body().get("reason"),
                                         certificates=wiring.parts().mobile_certificates)
    return jsonify(account=account_admin.account_summary(account))


@bp.post("/accounts/<int:account_id>/unlock")
def unlock_account(account_id: int):
    operator = _operator(staff.ACCOUNTS_WRITE)
    account = account_admin.get_account(operator, account_id)
    account = account_admin.unlock_account(operator, account, json_body().get("reason"),
                                           certificates=wiring.parts().mobile_certificates)
    return jsonify(account=account_admin.account_summary(account))


@bp.post("/accounts/<int:account_id>/role")
def set_role(account_id: int):
    operator = _operator(staff.ROLES_WRITE)
    body = json_body()
    account = account_admin.get_account(operator, account_id)
    account = account_admin.set_role(operator, account, body.get("role"), body.get("reason"))
    return jsonify(account=account_admin.account_summary(account))


@bp.post("/devices/<int:device_id>/<any(suspend, resume, revoke):action>")
def device_action(device_id: int, action: str):
    operator = _operator(staff.DEVICES_WRITE)
    device = account_admin.device_action(operator, device_id, action, json_body().get("reason"),
                                         phones=wiring.parts().devices)
    return jsonify(device=account_admin.device_detail(device))


# -- relying parties ------------------------------------------------------------------------------------


@bp.get("/clients")
def list_clients():
    _operator(staff.READ)
    return jsonify(clients=[clients.client_view(c) for c in clients.list_all()])


@bp.post("/clients")
def create_client():
    operator = _operator(staff.CLIENTS_WRITE)
    body = json_body()
    client, secret = clients.create(
        actor=operator.actor,
        reason=staff.reason_of(body.get("reason")),
        name=body.get("name"),
        redirect_uris=body.get("redirect_uris"),
        post_logout_redirect_uris=body.get("post_logout_redirect_uris") or [],
        scopes=body.get("allowed_scopes"),
        allow_national_id=body.get("allow_national_id") is True,
        allow_card_login=body.get("allow_card_login") is not False,
        token_endpoint_auth_method=body.get("token_endpoint_auth_method") or "client_secret_basic",
        jwks=body.get("jwks"),
        subject_type=body.get("subject_type") or "pairwise",
        sector=body.get("sector") if isinstance(body.get("sector"), str) else None,
        id_token_alg=body.get("id_token_signed_response_alg") or "RS256",
        backchannel_logout_uri=body.get("backchannel_logout_uri"),
        backchannel_logout_session_required=body.get("backchannel_logout_session_required") is True,
    )
    return jsonify(client=clients.client_view(client), client_secret=secret), 201


@bp.patch("/clients/<client_id>")
def update_client(client_id: str):
    operator = _operator(staff.CLIENTS_WRITE)
    body = json_body()
    reason = staff.reason_of(body.pop("reason", None))
    client = clients.update(clients.get(client_id), body, actor=operator.actor, reason=reason)
    return jsonify(client=clients.client_view(client))


@bp.post("/clients/<client_id>/<any('rotate-secret', disable, enable):action>")
def client_action(client_id: str, action: str):
    operator = _operator(staff.CLIENTS_WRITE)
    reason = staff.reason_of(json_body().get("reason"))
    client = clients.get(client_id)
    if action == "rotate-secret":
        secret = clients.rotate_secret(client, actor=operator.actor, reason=reason)
        return jsonify(client=clients.client_view(client), client_secret=secret)
    act = clients.disable if action == "disable" else clients.enable
    return jsonify(client=clients.client_view(act(client, actor=operator.actor, reason=reason)))


# -- agencies (需用機關) of the TW FidO service-provider API ------------------------------------------------


@bp.get("/agencies")
def list_agencies():
    _operator(staff.READ)
    return jsonify(agencies=[agencies.agency_view(a) for a in agencies.list_all()])


@bp.post("/agencies")
def add_agency():
    operator = _operator(staff.AGENCIES_WRITE)
    body = json_body()
    # Absent or null: calls from anywhere. Anything else the service checks (false is no list of networks).
    allowed_ips = body.get("allowed_ips")
    agency, api_key = wiring.parts().agencies.add(
        actor=operator.actor,
        reason=staff.reason_of(body.get("reason")),
        name=body.get("name"),
        allowed_ips=[] if allowed_ips is None else allowed_ips,
        callback_url=body.get("callback_url"),
    )
    return jsonify(agency=agencies.agency_view(agency), api_key=api_key), 201


@bp.post("/agencies/<sp_service_id>/<any('rotate-key', disable):action>")
def agency_action(sp_service_id: str, action: str):
    operator = _operator(staff.AGENCIES_WRITE)
    reason = staff.reason_of(json_body().get("reason"))
    agency = agencies.get(sp_service_id)
    if action == "rotate-key":
        api_key = wiring.parts().agencies.rotate_key(agency, actor=operator.actor, reason=reason)
        return jsonify(agency=agencies.agency_view(agency), api_key=api_key)
    agency = wiring.parts().agencies.disable(agency, actor=operator.actor, reason=reason)
    return jsonify(agency=agencies.agency_view(agency))


# -- the audit trail ------------------------------------------------------------------------------------


@bp.get("/audit")
def audit():
    operator = _operator(staff.READ)
    wanted = audit_filter(request.args)
    events = audit_trail.events(operator, wanted)
    more = len(events) == wanted.limit
    return jsonify(events=[audit_trail.event_view(e) for e in events], next_before=events[-1].id if more else None)


@bp.get("/audit.csv")
def audit_csv():
    operator = _operator(staff.READ)
    return audit_csv_response(operator, audit_filter(request.args))


def audit_csv_response(operator: Operator, wanted: audit_trail.AuditFilter) -> Response:
    """The export as a streamed download (the console's too)."""
    rows = audit_trail.csv_rows(operator, wanted)
    first = next(rows)  # checks and records the export before the response starts
    return Response(stream_with_context(itertools.chain((first,), rows)), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


# -- service tokens (admins in a session only: a token cannot mint or revoke tokens) ---------------------


@bp.get("/service-tokens")
def list_service_tokens():
    _operator(staff.READ)
    return jsonify(tokens=[service_tokens.view(t) for t in service_tokens.list_all()])


@bp.post("/service-tokens")
def create_service_token():
    operator = _operator(staff.TOKENS_WRITE)
    body = json_body()
    token, raw = service_tokens.create(
        actor=operator.actor, name=body.get("name"), scopes=body.get("scopes"), expires_in_days=body.get("expires_in_days")
    )
    return jsonify(token=service_tokens.view(token), service_token=raw), 201


@bp.post("/service-tokens/<int:token_id>/revoke")
def revoke_service_token(token_id: int):
    operator = _operator(staff.TOKENS_WRITE)
    token = service_tokens.revoke(operator, token_id, json_body().get("reason"))
    return jsonify(token=service_tokens.view(token))
