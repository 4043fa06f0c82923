"""The administration console, ``/admin``: pages over the same services as the JSON API (``api.py``).

Plain HTML forms that work without JavaScript, for an admin or auditor logged in here (never a service
token). Every change is a POST with the CSRF token and a reason. It answers with a redirect and a flashed
message (post/redirect/get), or, when the service refuses, with the same page again showing why, at the
refusal's 4xx status, having changed nothing: each such view catches the :class:`Refusal` itself and
answers with :func:`_shown_again`. Secrets (a client's, a service token, an agency's API key) are the exception:
shown once on the POST's own answer and kept nowhere, not even in the session cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from sqlalchemy import select

from .. import refusals, timezones, wiring
from ..refusals import N_
from ..extensions import db
from ..i18n import issuer_name
from ..models import Account, Device, utcnow
from ..oidc import claims as oidc_claims
from ..services import account_admin, agencies, audit_trail, clients, service_tokens, staff
from ..services.refusals import Refusal
from .api import audit_csv_response
from .auth import current_operator
from .query import audit_filter

bp = Blueprint("admin_console", __name__, url_prefix="/admin")

SEARCH_KINDS = account_admin.SEARCH_KINDS
FILTER_FIELDS = ("account", "device", "site", "agency", "event", "actor", "since", "until")
AUDIT_PAGE = 50
RECENT_EVENTS = 20
# The console's choice of token endpoint methods: private_key_jwt needs the client's JWKS (CLI or API).
CONSOLE_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


@bp.before_request
def _operator() -> None:
    g.operator = current_operator(allow_token=False)


@bp.after_request
def _not_cached(response: Response) -> Response:
    # Personal data and, once, secrets: no copy in a browser's or proxy's cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _globals() -> dict:
    return {"operator": g.get("operator"), "staff": staff}


@bp.errorhandler(Refusal)
def _refused(refusal: Refusal):
    """A refusal no view shows on its own page: who is operating (before any view), or the page itself."""
    status = refusals.lookup(refusal).status
    if status == 401:
        here = request.full_path.rstrip("?") if request.method == "GET" else url_for(".index")
        return redirect(url_for("auth.login_page", next=here))
    db.session.rollback()  # whatever the refused change touched stays as it was
    return render_template("error.html", status=status, message=refusals.message(refusal)), status


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    refusal = Refusal("csrf_failed")
    return render_template("error.html", status=400, message=refusals.message(refusal)), 400


def _shown_again(refusal: Refusal, page: Callable[..., str], *args, **kwargs):
    """``page`` again with why the service refused, at the refusal's status, having changed nothing. Should
    the page itself be refused (say, the account is gone), ``_refused`` shows that instead."""
    db.session.rollback()  # whatever the refused change touched stays as it was
    return page(*args, error=refusals.message(refusal), **kwargs), refusals.lookup(refusal).status


def _done(message: str, endpoint: str, **values) -> Response:
    flash(message, "success")
    return redirect(url_for(endpoint, **values))


def _reason() -> str:
    return staff.reason_of(request.form.get("reason"))


# The audit trail's detail keys (the ``**details`` of app.audit.record) as the console labels them; a key not
# listed is shown as it is, as code (tests/app/test_page_languages.py checks that each key recorded has a label).
AUDIT_DETAIL_LABELS = {
    "aaguid": N_("Authenticator model (AAGUID)"),
    "account": N_("Account"),
    "account_cards": N_("Cards of the account"),
    "agency": N_("Agency"),
    "allowed_ips": N_("Allowed IP addresses"),
    "attempts": N_("Attempts"),
    "attempts_left": N_("Attempts left"),
    "auth_method": N_("Client authentication"),
    "auth_session": N_("Login session"),
    "backchannel_logouts": N_("Sites told of the logout"),
    "binding": N_("Binding"),
    "by": N_("Done by"),
    "callback_url": N_("Callback URL"),
    "card": N_("Card"),
    "card_serial": N_("Card serial number"),
    "certificate": N_("Certificate"),
    "certificates_held": N_("Certificates put on hold"),
    "certificates_released": N_("Certificates taken off hold"),
    "changes": N_("Changes"),
    "client": N_("Site (client ID)"),
    "code": N_("Result code"),
    "conflict": N_("Conflict"),
    "delivered": N_("Taken by the mail server"),
    "detail": N_("Detail"),
    "device": N_("Device"),
    "email": N_("Email"),
    "error": N_("Error"),
    "failed": N_("Failed"),
    "field": N_("Field"),
    "filter": N_("Filter"),
    "fmt": N_("Attestation format"),
    "found": N_("Found"),
    "grant": N_("Grant"),
    "inbox": N_("Inbox"),
    "is_fido": N_("FIDO request"),
    "is_mcert_sign": N_("Signed with the mobile certificate"),
    "items": N_("Items"),
    "length": N_("Length"),
    "limits": N_("Limits"),
    "login_id": N_("Login"),
    "login_request": N_("Login request"),
    "max": N_("Most allowed"),
    "method": N_("Login method"),
    "name": N_("Name given"),
    "national_id": N_("National ID number"),
    "new": N_("New"),
    "old": N_("Old"),
    "op_code": N_("Operation code"),
    "op_mode": N_("Operation mode"),
    "operation": N_("Operation"),
    "path": N_("Path"),
    "phone": N_("Mobile number"),
    "previous": N_("Before"),
    "push_service": N_("Push service"),
    "race": N_("Lost to a request at the same moment"),
    "received": N_("Sign counter received"),
    "refresh_token": N_("Refresh token"),
    "registration_required": N_("Registration required"),
    "removed": N_("Removed"),
    "replaced": N_("Replaced"),
    "replaced_by": N_("Replaced by"),
    "role": N_("Role"),
    "scanned": N_("QR Code scanned"),
    "scope": N_("Scope"),
    "scopes": N_("Scopes"),
    "sent": N_("Sent"),
    "serial": N_("Serial number"),
    "service_tokens_revoked": N_("Service tokens revoked"),
    "session": N_("Session"),
    "sessions_ended": N_("Sessions ended"),
    "sp_request": N_("Agency's request"),
    "stored": N_("Sign counter stored"),
    "superseded": N_("Superseded"),
    "time_limit": N_("Time limit"),
    "token": N_("Token"),
    "tokens_revoked": N_("Tokens revoked"),
    "transaction_id": N_("Transaction ID"),
    "until": N_("Until"),
}


@bp.app_template_filter("detail_label")
def detail_label(key: str) -> Markup:
    """An audit detail's label in the request's language; a key without one as code."""
    label = AUDIT_DETAIL_LABELS.get(key)
    return Markup.escape(_(label)) if label else Markup("<code>{}</code>").format(key)


@bp.app_template_filter("issuer_name")
def _issuer_name(dn: str | None) -> str:
    return issuer_name(dn)


@bp.app_template_filter("console_time")
def console_time(value: datetime | str | None) -> str:
    """A moment in the display zone (``MOCERT_DISPLAY_TIMEZONE``, Taiwan time by default), its offset named."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return timezones.shown(moment, timezones.display_zone())


@bp.app_template_filter("console_value")
def console_value(value: object) -> str:
    """An audit detail as text: lists and objects as JSON that keeps Chinese readable."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "—" if value is None else str(value)


# -- finding people -------------------------------------------------------------------------------------


@bp.get("")
def index():
    return _search_page()


@bp.post("")
def search():
    # A POST although nothing changes: a national ID, email or phone number must not sit in URLs (access
    # logs, browser history). The answer is the results page itself; there is nothing to redirect to.
    kind, value = request.form.get("by", ""), request.form.get("q", "")
    try:
        accounts = account_admin.find_accounts(g.operator, {kind: value},
                                               national_id_hash=wiring.parts().national_id_hash)
    except Refusal as refusal:
        return _shown_again(refusal, _search_page, kind=kind, value=value)
    return _search_page(kind=kind, value=value, accounts=accounts)


def _search_page(*, kind: str = "any", value: str = "", accounts=None, error: str | None = None) -> str:
    g.operator.require(staff.READ)
    return render_template("admin/index.html", kinds=SEARCH_KINDS, kind=kind, value=value, accounts=accounts,
                           error=error)


# -- a person: details, devices, lock, role -------------------------------------------------------------


@bp.get("/accounts/<int:account_id>")
def account(account_id: int):
    return _account_page(account_id)


def _account_page(account_id: int, *, error: str | None = None) -> str:
    operator = g.operator
    detail = account_admin.account_detail(account_admin.get_account(operator, account_id), events=RECENT_EVENTS)
    return render_template(
        "admin/account.html",
        account=detail,
        own=operator.account_id == account_id,
        people=_people(detail["events"]),
        roles=sorted(staff.ROLES),
        error=error,
    )


@bp.post("/accounts/<int:account_id>/devices/<int:device_id>/<any(suspend, resume, revoke):action>")
def device_action(account_id: int, device_id: int, action: str):
    try:
        account_admin.get_account(g.operator, account_id)
        device = db.session.get(Device, device_id)
        if device is None or device.account_id != account_id:  # the form names the person it was shown for
            raise Refusal("device_unknown")
        device = account_admin.device_action(g.operator, device_id, action, request.form.get("reason"),
                                             phones=wiring.parts().devices)
    except Refusal as refusal:
        return _shown_again(refusal, _account_page, account_id)
    if action == "suspend":
        message = _("“%(name)s” is suspended: it cannot log in and its mobile certificate is on hold.",
                    name=device.name)
    elif action == "resume":
        message = _("“%(name)s” works again and its mobile certificate is valid again.", name=device.name)
    else:
        message = _("“%(name)s” is revoked for good and its mobile certificate is revoked.", name=device.name)
    return _done(message, ".account", account_id=account_id)


@bp.post("/accounts/<int:account_id>/<any(lock, unlock):action>")
def lock_account(account_id: int, action: str):
    try:
        account = account_admin.get_account(g.operator, account_id)
        if action == "lock":
            account_admin.lock_account(g.operator, account, request.form.get("reason"),
                                       certificates=wiring.parts().mobile_certificates)
        else:
            account_admin.unlock_account(g.operator, account, request.form.get("reason"),
                                         certificates=wiring.parts().mobile_certificates)
    except Refusal as refusal:
        return _shown_again(refusal, _account_page, account_id)
    if action == "lock":
        message = _("The account is locked: its sessions have ended and its tokens are revoked.")
    else:
        message = _("The account is unlocked.")
    return _done(message, ".account", account_id=account_id)


@bp.post("/accounts/<int:account_id>/role")
def set_role(account_id: int):
    role = request.form.get("role") or None  # the empty choice takes the role away
    try:
        account = account_admin.get_account(g.operator, account_id)
        account_admin.set_role(g.operator, account, role, request.form.get("reason"))
    except Refusal as refusal:
        return _shown_again(refusal, _account_page, account_id)
    return _done(_("The role is saved."), ".account", account_id=account_id)


# -- relying parties ------------------------------------------------------------------------------------


@bp.get("/clients")
def clients_page():
    return _clients_page()


def _clients_page(*, form: Mapping[str, str] | None = None, error: str | None = None) -> str:
    g.operator.require(staff.READ)
    return render_template(
        "admin/clients.html",
        clients=clients.list_all(),
        form=form,
        scopes=_offered_scopes(),
        default_scopes=oidc_claims.DEFAULT_CLIENT_SCOPES,
        auth_methods=CONSOLE_AUTH_METHODS,
        error=error,
    )


@bp.post("/clients")
def create_client():
    g.operator.require(staff.CLIENTS_WRITE)
    form = request.form
    try:
        client, secret = clients.create(
            actor=g.operator.actor,
            reason=_reason(),
            name=form.get("name"),
            redirect_uris=form.get("redirect_uris", ""),
            post_logout_redirect_uris=form.get("post_logout_redirect_uris", ""),
            scopes=_scopes_of(form),
            allow_national_id="allow_national_id" in form,
            allow_card_login="allow_card_login" in form,
            token_endpoint_auth_method=form.get("token_endpoint_auth_method") or "client_secret_basic",
            backchannel_logout_uri=form.get("backchannel_logout_uri", ""),
            backchannel_logout_session_required="backchannel_logout_session_required" in form,
        )
    except Refusal as refusal:
        return _shown_again(refusal, _clients_page, form=form)
    # Shown on this POST's answer, not after a redirect: the secret must not travel through the session.
    return render_template("admin/secret.html", kind="client", client=client, secret=secret), 201


@bp.get("/clients/<client_id>")
def client_page(client_id: str):
    return _client_page(client_id)


def _client_page(client_id: str, *, form: Mapping[str, str] | None = None, error: str | None = None) -> str:
    client = clients.get(client_id)
    recent = audit_trail.events(g.operator, audit_trail.AuditFilter(client=client_id, limit=RECENT_EVENTS))
    events = [audit_trail.event_view(event) for event in recent]
    return render_template("admin/client.html", client=client, form=form, scopes=_offered_scopes(),
                           events=events, people=_people(events), error=error)


@bp.post("/clients/<client_id>")
def update_client(client_id: str):
    g.operator.require(staff.CLIENTS_WRITE)
    form = request.form
    changes = {
        "name": form.get("name"),
        "redirect_uris": form.get("redirect_uris", ""),
        "post_logout_redirect_uris": form.get("post_logout_redirect_uris", ""),
        "allowed_scopes": _scopes_of(form),
        "allow_national_id": "allow_national_id" in form,
        "allow_card_login": "allow_card_login" in form,
        "backchannel_logout_uri": form.get("backchannel_logout_uri", ""),
        "backchannel_logout_session_required": "backchannel_logout_session_required" in form,
    }
    try:
        clients.update(clients.get(client_id), changes, actor=g.operator.actor, reason=_reason())
    except Refusal as refusal:
        return _shown_again(refusal, _client_page, client_id, form=form)
    return _done(_("The site's settings are saved."), ".client_page", client_id=client_id)


@bp.post("/clients/<client_id>/rotate-secret")
def rotate_client_secret(client_id: str):
    g.operator.require(staff.CLIENTS_WRITE)
    try:
        client = clients.get(client_id)
        secret = clients.rotate_secret(client, actor=g.operator.actor, reason=_reason())
    except Refusal as refusal:
        return _shown_again(refusal, _client_page, client_id)
    # As at creation: the new secret is on this answer only.
    return render_template("admin/secret.html", kind="rotated", client=client, secret=secret)


@bp.post("/clients/<client_id>/<any(disable, enable):action>")
def client_switch(client_id: str, action: str):
    g.operator.require(staff.CLIENTS_WRITE)
    try:
        client = clients.get(client_id)
        switch = clients.disable if action == "disable" else clients.enable
        switch(client, actor=g.operator.actor, reason=_reason())
    except Refusal as refusal:
        return _shown_again(refusal, _client_page, client_id)
    if action == "disable":
        message = _("The site is disabled: it can no longer log people in or use its tokens.")
    else:
        message = _("The site is enabled again.")
    return _done(message, ".client_page", client_id=client_id)


def _offered_scopes() -> list[str]:
    # openid is always granted, national_id follows the "allow the national ID" setting.
    return [scope for scope in oidc_claims.SCOPES_SUPPORTED if scope not in ("openid", "national_id")]


def _scopes_of(form) -> list[str]:
    return ["openid", *form.getlist("scope")]


# -- agencies (需用機關) of the TW FidO service-provider API ------------------------------------------------


@bp.get("/agencies")
def agencies_page():
    return _agencies_page()


def _agencies_page(*, form: Mapping[str, str] | None = None, error: str | None = None) -> str:
    g.operator.require(staff.READ)
    return render_template("admin/agencies.html", agencies=agencies.list_all(), form=form, error=error)


@bp.post("/agencies")
def add_agency():
    g.operator.require(staff.AGENCIES_WRITE)
    form = request.form
    try:
        agency, api_key = wiring.parts().agencies.add(
            actor=g.operator.actor,
            reason=_reason(),
            name=form.get("name"),
            allowed_ips=form.get("allowed_ips", ""),
            callback_url=form.get("callback_url", ""),
        )
    except Refusal as refusal:
        return _shown_again(refusal, _agencies_page, form=form)
    # As a client secret: on this POST's answer only, never through the session.
    return render_template("admin/secret.html", kind="agency", agency=agency, secret=api_key), 201


@bp.get("/agencies/<sp_service_id>")
def agency_page(sp_service_id: str):
    return _agency_page(sp_service_id)


def _agency_page(sp_service_id: str, *, error: str | None = None) -> str:
    agency = agencies.get(sp_service_id)
    wanted = audit_trail.AuditFilter(agency=agency.sp_service_id, limit=RECENT_EVENTS)
    events = [audit_trail.event_view(event) for event in audit_trail.events(g.operator, wanted)]
    return render_template("admin/agency.html", agency=agency, events=events, people=_people(events), error=error)


@bp.post("/agencies/<sp_service_id>/rotate-key")
def rotate_agency_key(sp_service_id: str):
    g.operator.require(staff.AGENCIES_WRITE)
    try:
        agency = agencies.get(sp_service_id)
        api_key = wiring.parts().agencies.rotate_key(agency, actor=g.operator.actor, reason=_reason())
    except Refusal as refusal:
        return _shown_again(refusal, _agency_page, sp_service_id)
    return render_template("admin/secret.html", kind="agency_rotated", agency=agency, secret=api_key)


@bp.post("/agencies/<sp_service_id>/disable")
def disable_agency(sp_service_id: str):
    g.operator.require(staff.AGENCIES_WRITE)
    try:
        agency = agencies.get(sp_service_id)
        wiring.parts().agencies.disable(agency, actor=g.operator.actor, reason=_reason())
    except Refusal as refusal:
        return _shown_again(refusal, _agency_page, sp_service_id)
    return _done(_("The agency is disabled: its calls are refused from now on."), ".agency_page",
                 sp_service_id=agency.sp_service_id)


# -- the audit trail ------------------------------------------------------------------------------------


@bp.get("/audit")
def audit():
    filters = {name: request.args.get(name, "").strip() for name in FILTER_FIELDS}
    try:
        events = audit_trail.events(g.operator, _audit_filter(request.args, limit=AUDIT_PAGE))
    except Refusal as refusal:
        return _shown_again(refusal, _audit_page, filters, None)
    return _audit_page(filters, events)


def _audit_page(filters: dict, events, *, error: str | None = None) -> str:
    g.operator.require(staff.READ)
    given = {name: value for name, value in filters.items() if value}
    older = events[-1].id if events and len(events) == AUDIT_PAGE else None
    views = [audit_trail.event_view(event) for event in events or ()]
    return render_template(
        "admin/audit.html",
        filters=filters,
        given=given,
        events=views,
        people=_people(views),
        older=older,
        newer=bool(request.args.get("before")),
        time_zone=timezones.zone_label(timezones.display_zone()),
        error=error,
    )


@bp.get("/audit.csv")
def audit_csv():
    filters = {name: request.args.get(name, "").strip() for name in FILTER_FIELDS}
    try:
        return audit_csv_response(g.operator, _audit_filter(request.args))
    except Refusal as refusal:
        return _shown_again(refusal, _audit_page, filters, None)


def _audit_filter(args: Mapping[str, str], *, limit: int | None = None) -> audit_trail.AuditFilter:
    """The service's filter from the form. Times typed without a zone are in the zone the pages show (the
    form's datetime-local inputs have none)."""
    values = {name: args.get(name, "") for name in FILTER_FIELDS}
    for name in ("since", "until"):
        values[name] = _zoned(values[name])
    if limit is not None:
        values.update(before=args.get("before", ""), limit=str(limit))
    return audit_filter(values)


def _zoned(value: str) -> str:
    try:
        moment = timezones.to_utc(datetime.fromisoformat(value.strip()), timezones.display_zone())
    except (ValueError, OverflowError):
        return value  # the service says what is wrong with it
    return moment.isoformat()


def _people(events: Iterable[dict]) -> dict[int, str]:
    """Names for the accounts events are about or were done by: one query for the whole page."""
    ids = set()
    for event in events:
        if event.get("account_id"):
            ids.add(event["account_id"])
        actor = event.get("actor") or ""
        if actor.startswith("account:") and actor[8:].isdecimal() and actor[8:].isascii():
            ids.add(int(actor[8:]))
    if not ids:
        return {}
    rows = db.session.execute(select(Account.id, Account.name).where(Account.id.in_(ids)))
    return {account_id: name for account_id, name in rows}


# -- service tokens (admins) ----------------------------------------------------------------------------


@bp.get("/tokens")
def tokens():
    return _tokens_page()


def _tokens_page(*, form: Mapping[str, str] | None = None, error: str | None = None) -> str:
    g.operator.require(staff.TOKENS_WRITE)
    tokens = service_tokens.list_all()
    return render_template("admin/tokens.html", tokens=tokens, scopes=staff.TOKEN_SCOPES, form=form, now=utcnow(),
                           people=_people({"actor": token.created_by} for token in tokens), error=error)


@bp.post("/tokens")
def create_token():
    g.operator.require(staff.TOKENS_WRITE)
    form = request.form
    try:
        token, raw = service_tokens.create(
            actor=g.operator.actor,
            name=form.get("name"),
            scopes=form.getlist("scope"),
            expires_in_days=_days(form.get("expires_in_days", "")),
        )
    except Refusal as refusal:
        return _shown_again(refusal, _tokens_page, form=form)
    # Shown on this POST's answer only, like a client secret.
    return render_template("admin/secret.html", kind="token", token=token, secret=raw), 201


def _days(value: str) -> int | str | None:
    """The form's number of days as a number when it is one (a few ASCII digits: int() refuses 4,300 and
    more); anything else goes to the service as it is, which refuses it."""
    days = value.strip()
    if not days:
        return None
    return int(days) if days.isascii() and days.isdecimal() and len(days) <= 9 else days


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    g.operator.require(staff.TOKENS_WRITE)
    try:
        token = service_tokens.revoke(g.operator, token_id, request.form.get("reason"))
    except Refusal as refusal:
        return _shown_again(refusal, _tokens_page)
    return _done(_("The token “%(name)s” is revoked.", name=token.name), ".tokens")
