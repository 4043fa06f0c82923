"""SP-API-WEB-01: an agency's request by browser redirect, answered by a form POST to its callback.

For agencies that prefer not to show a QR code themselves:

1. The agency's page has the person's browser form-POST to ``/moise/sp/fidoRedirect/web`` (the contract's
   fields: ``transaction_id, op_code, sp_service_id, sp_checksum, hint, sign_type, sign_data, tbs_encoding,
   hash_algorithm, time_limit``). There is no ``id_num``: the person is whoever approves, with any phone
   bound to MoCert (or a passkey on this device). The form comes from the person's browser, not from the
   agency's servers, so the agency's address list does not apply: the ``sp_checksum`` alone shows the
   request is the agency's.
2. MoCert's page shows the agency, its hint and what is signed, a QR code of the phone's link
   (``/m/sp?sp_ticket=…``) and the passkey on this device, and follows the request with a token of its own
   (the *browser token*, stored hashed in ``SpRequest.browser_hash``), not with the ticket its QR code shows.
3. Once a phone has approved, the page asks the person to type their national ID. The callback carries
   ``id_num``, but MoCert keeps national IDs only as keyed hashes (``tokens.NationalIdHash``): only the person
   can give it, as on the OIDC consent page, and it is checked the same way, against the approver's hash,
   counting the same attempts (``app/oidc/national_id.py``; the view asks it). A phone not the person's
   own is caught here: its owner's ID is not the one the person types.
4. The page form-POSTs the answer to the agency's registered ``callback_url``: ``transaction_id, error_code,
   id_num, signed_response, cert, idp_checksum``; the approval's answer is handed over once
   (``released_at``), within :data:`CONFIRM_WINDOW` of the approval.

The checksum orders of WEB-01 are not published; MoCert's are :data:`FIELDS` (getSpTicket's without the
``id_num`` and ``op_mode`` WEB-01 does not have) and :data:`ANSWER_FIELDS` (getAthOrSignResult's answer,
with ``id_num`` where it has ``hashed_id_num``). A form's values arrive as the browser sends them, which
writes every line break as CRLF: an agency signs, and gets signed, ``sign_data`` and ``hint`` with CRLF. The
callback carries no ``sp_ticket_id`` (the contract's fields do not have it): the agency reads it from the
signed response's ``challenge_input``, and checks the rest of it against what it sent.

Refusals: while the request is not shown to be the agency's (``PM_INV_NF`` of its transaction_id,
``SPSVCID_NF``, ``INV_SP_CHECKSUM``), or the agency has no callback URL (``SP_CALLBACK_NF``), the refusal is
raised and the view shows an error page: MoCert never posts to an address the agency did not register. Any
later refusal of the form (``TGT_INV``, ``SPTKT_TIME_*``, ``SIGNDATA_LEN_LIMIT``, ``PM_INV_NF``,
``TXNLOG_INS_ERR``) goes back to the agency's callback with its code, as do a decline (``APP_USER_CANCEL``),
expiry (``SPTKT_OVD``) and an ID the person could not confirm (``IDNUM_NOT_CONFIRMED``). Every refusal is
audited by ``SpRequests._refused`` as the JSON API's are. A reload of MoCert's page resends the agency's form:
its transaction_id is used by then, so the agency hears ``TXNLOG_INS_ERR``. An answer goes to the callback
URL registered when it is given, under the agency's key of that moment.

The request is an ordinary :class:`~app.models.SpRequest` (``op_mode`` "WEB", no account until a phone
approves), made, checked and answered by :class:`~app.services.sp_requests.SpRequests`: one mechanism.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from twfido import checksum, codes
from twfido import ticket as sp_ticket

from ..audit import Tags, record
from ..extensions import db
from ..models import SpRequest, utcnow
from . import agencies as agency_rules
from . import tickets
from .refusals import Refusal
from .sp_requests import HINT_MAX, WEB, SpRequests
from .tokens import digest, new_token

OPERATION = "fidoRedirect/web"  # as twfido.codes names it: error codes read SP-API-WEB-01-<code>
# MoCert's checksum orders (not published): see the module's docstring.
FIELDS = ("transaction_id", "sp_service_id", "op_code", "hint", "sign_data")
ANSWER_FIELDS = ("transaction_id", "error_code", "id_num", "signed_response")
# The form's fields, the contract's; sign_info's are flat in a form.
FORM_FIELDS = ("transaction_id", "op_code", "sp_service_id", "sp_checksum", "hint", "time_limit")
SIGN_INFO_FIELDS = ("sign_type", "sign_data", "tbs_encoding", "hash_algorithm")
OP_CODES = {"ATH", "SIGN"}  # one sign_data in a form: no BATSIGN
# How long after the approval the person may type their ID: the answer waits for it, not for the request's
# time limit, which the approval already met.
CONFIRM_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class PostBack:
    """The form MoCert's page posts to the agency's callback: ``fields`` to ``action``. ``code`` is the
    answer's bare code ("0" for an approval)."""

    action: str
    code: str
    fields: dict[str, str]

    def as_json(self) -> dict:
        return {"action": self.action, "fields": self.fields}


@dataclass(frozen=True)
class WebPage:
    """What MoCert's page shows: the request, the phone's link (its QR code), its ticket (for the passkey on
    this device), and the token the page follows the request with, which nothing else holds."""

    sp_request: SpRequest
    phone_url: str
    sp_ticket: str
    browser_token: str


class WebRedirects:
    """Built once (``app/wiring.py``) over the agencies' :class:`SpRequests`."""

    def __init__(self, *, sp_requests: SpRequests) -> None:
        self.sp = sp_requests

    # -- the agency's form ---------------------------------------------------------------------------------

    def start(self, form: Mapping[str, str]) -> WebPage | PostBack:
        """The request the agency's form asks for, and MoCert's page for it; or, once the form is shown to
        be the agency's, its refusal as the answer to post back. Raises :class:`Refusal` (case ``sp_api``)
        while it is not (and for an agency without a callback URL)."""
        body = _body(form)
        agency = agency_rules.by_service_id(body.get("sp_service_id"))
        key = self.sp._authenticate(OPERATION, body, None, agency, FIELDS, check_address=False)
        if not agency.callback_url:
            raise self.sp._refused(OPERATION, "SP_CALLBACK_NF", agency, body)
        try:
            op_code = self.sp._one_of(OPERATION, agency, body, "op_code", OP_CODES)
            hint = self.sp._text(OPERATION, agency, body, "hint", HINT_MAX, required=False) or ""
            ttl = self.sp._time_limit(OPERATION, agency, body)
            sign_info, signed_data = self.sp._sign_info(OPERATION, agency, body, op_code)
            browser_token = new_token()
            sp_request, issued = self.sp._issue(
                OPERATION, agency, body, ttl=ttl, account=None, hashed_id_num=None, op_code=op_code, op_mode=WEB,
                hint=hint, sign_info=sign_info, signed_data=signed_data, browser_hash=digest(browser_token),
            )
        except Refusal as refusal:  # audited (and everything undone) by _refused
            return _post_back(agency.callback_url, key, body["transaction_id"], refusal.code)
        return WebPage(sp_request, self.sp.phone_url(issued), issued, browser_token)

    # -- MoCert's page ---------------------------------------------------------------------------------------

    def status(self, browser_token: object) -> dict:
        """Where the request is, for its page: ``pending``, ``scanned``, ``approved`` (the page asks for the
        ID), ``released`` (answered already), or ``declined`` / ``expired`` with the form to post back
        (``post``). One read; an answer with no secret in it is handed over as often as asked."""
        sp_request = self._mine(browser_token)
        now = utcnow()
        if sp_request.released_at is not None:
            return {"status": "released"}
        if sp_request.completed_at is not None:
            if now < sp_request.completed_at + CONFIRM_WINDOW:
                return {"status": "approved", "confirm_by": (sp_request.completed_at + CONFIRM_WINDOW).isoformat()}
            return {"status": "expired", "post": self._refusal_of(sp_request, "SPTKT_OVD").as_json()}
        if sp_request.failure is not None:
            return {"status": "declined", "post": self._refusal_of(sp_request, sp_request.failure).as_json()}
        state = sp_request.status(now)
        if state == "expired":
            return {"status": "expired", "post": self._refusal_of(sp_request, "SPTKT_OVD").as_json()}
        return {"status": state}

    def awaiting_id(self, browser_token: object) -> SpRequest:
        """The approved request whose page may now give the person's ID; else :class:`Refusal` (case
        ``sp_web``): unknown, not approved yet, answered already, or too late."""
        sp_request = self._mine(browser_token)
        if sp_request.released_at is not None:
            raise Refusal("SPTKTID_SPTKT_RDM", case="sp_web")
        if sp_request.completed_at is None:
            raise Refusal("sp_request_not_approved", case="sp_web")
        if utcnow() >= sp_request.completed_at + CONFIRM_WINDOW:
            raise Refusal("SPTKT_OVD", case="sp_web")
        return sp_request

    def audit_facts(self, sp_request: SpRequest) -> dict:
        """What names the request in the audit trail (the ID's confirmation is recorded with them)."""
        return {"agency": sp_request.agency.sp_service_id, "sp_request": sp_request.public_id}

    def release(self, sp_request: SpRequest, national_id: str) -> PostBack:
        """The approval's answer, with the national ID the person confirmed (``awaiting_id``, then the view's
        confirmation): handed over once, committed with the confirmation's audit event."""
        now = utcnow()
        if not self._claim(sp_request, now, hashed_id_num=sp_ticket.hashed_id_num(national_id)):
            raise self._taken()
        record(Tags.SP_REQUEST_RELEASED, account=sp_request.account, code=codes.SUCCESS, **self.audit_facts(sp_request),
               transaction_id=sp_request.transaction_id, device=sp_request.device_id)
        db.session.commit()
        agency = sp_request.agency
        fields = {
            "transaction_id": sp_request.transaction_id,
            "error_code": codes.SUCCESS,
            "id_num": national_id,
            "signed_response": sp_request.signed_response or "",
            "cert": sp_request.cert or "",
        }
        key = self.sp.agencies.key_of(agency)
        fields["idp_checksum"] = checksum.seal(key, checksum.fields_of(fields, ANSWER_FIELDS))
        return PostBack(agency.callback_url, codes.SUCCESS, fields)

    def unconfirmed(self, sp_request: SpRequest) -> PostBack:
        """The person had no attempts left to type their ID: the agency hears IDNUM_NOT_CONFIRMED (once)."""
        if not self._claim(sp_request, utcnow()):
            raise self._taken()
        record(Tags.SP_REQUEST_RELEASED, account=sp_request.account, code="IDNUM_NOT_CONFIRMED",
               **self.audit_facts(sp_request), transaction_id=sp_request.transaction_id)
        db.session.commit()
        return self._refusal_of(sp_request, "IDNUM_NOT_CONFIRMED")

    # -- internals -------------------------------------------------------------------------------------------

    @staticmethod
    def _mine(browser_token: object) -> SpRequest:
        if not isinstance(browser_token, str) or len(browser_token) not in tickets.TOKEN_LENGTHS:
            raise Refusal("SPTKTID_SPTKT_NF", case="sp_web")
        sp_request = db.session.scalar(
            select(SpRequest).options(joinedload(SpRequest.agency)).where(SpRequest.browser_hash == digest(browser_token))
        )
        if sp_request is None:
            raise Refusal("SPTKTID_SPTKT_NF", case="sp_web")
        return sp_request

    def _refusal_of(self, sp_request: SpRequest, code: str) -> PostBack:
        return _post_back(sp_request.agency.callback_url, self.sp.agencies.key_of(sp_request.agency),
                          sp_request.transaction_id, code)

    @staticmethod
    def _claim(sp_request: SpRequest, now: datetime, **values: object) -> bool:
        """The one hand-over of the approval's answer: one conditional UPDATE, not committed, while the
        approval is still within CONFIRM_WINDOW (checked again here: the typed ID's check may have waited
        on the account's row lock past it)."""
        return tickets.claim(sp_request, SpRequest.released_at.is_(None), SpRequest.completed_at.is_not(None),
                             SpRequest.completed_at > now - CONFIRM_WINDOW, released_at=now, commit=False, **values)

    @staticmethod
    def _taken() -> Refusal:
        db.session.rollback()
        return Refusal("SPTKTID_SPTKT_RDM", case="sp_web")


def _body(form: Mapping[str, str]) -> dict:
    """The form as the checks read a JSON request: the contract's fields, sign_info's gathered (an empty one
    left out, so its default applies)."""
    body: dict = {name: form[name] for name in FORM_FIELDS if name in form}
    body["sign_info"] = {name: form[name] for name in SIGN_INFO_FIELDS if form.get(name)}
    return body


def _post_back(callback_url: str | None, key: bytes, transaction_id: str, code: str) -> PostBack:
    """A refusal's answer: its code, the empty fields, and the idp_checksum over them."""
    fields = {"transaction_id": transaction_id, "error_code": codes.error_code(OPERATION, code), "id_num": "",
              "signed_response": "", "cert": ""}
    fields["idp_checksum"] = checksum.seal(key, checksum.fields_of(fields, ANSWER_FIELDS))
    return PostBack(callback_url or "", code, fields)
