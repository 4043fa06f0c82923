"""Agencies' requests through the TW FidO service-provider API: made, polled, and answered on a phone.

An agency (需用機關) asks for a person's approval (ATH), signature (SIGN) or batch signature (BATSIGN) by
national ID; MoCert answers an ``sp_ticket`` (shown as a QR code, opened on the same phone, or pushed to
the person's bound phones) and the agency polls for the result. Each call is authenticated three ways, in
this order: an active agency of that ``sp_service_id``, calling from an address on its list, with an
``sp_checksum`` made with its key over the operation's fields (``twfido.checksum``). Only then is the rest
of the request read, so a caller without the key learns nothing about what would pass.

A refusal is raised as :class:`Refusal` with the contract's code (``INV_SP_CHECKSUM``; ``case="sp_api"``),
audited in a transaction of its own after whatever the call had begun is rolled back: a refused call
changes nothing. The HTTP layer (``app/sp_api``) answers it as the contract does, HTTP 200 with the code.

The request is a :class:`~app.models.SpRequest`, a single-use ticket whose token is the ``sp_ticket_id``.
Its WebAuthn challenge is the SHA-256 of ``challenge_input`` (``twfido.challenge``), fixed when it is made;
the phone's assertion over it is the ``signed_response`` anyone can check (``twfido.signed_response``).

- Making a request is one transaction (reads, the row, its audit event).
- Polling is the hot path (every waiting agency, every 4 s): one indexed read of the agency and the
  request together, and no write.
- An answer (approve or decline) is one transaction: one conditional UPDATE takes the request while it is
  unanswered and unexpired, with the device's counter and the audit event, so of two answers racing one
  wins, and the other is told ``SPTKTID_SPTKT_RDM``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

import webauthn
from iccard import national_id as nid
from twfido import checksum, codes
from twfido import ticket as sp_ticket
from twfido.challenge import batch_digests, challenge, challenge_input
from twfido.signed_response import SignedResponse

from ..audit import Tags, record
from ..extensions import db
from ..input_checks import storable
from ..models import Account, Agency, Device, DeviceStatus, SpRequest, utcnow
from . import agencies as agency_rules
from . import tickets
from .agencies import Agencies
from .devices import Devices, RelyingParty, by_credential, ensure_usable
from .push_notices import PushNotices
from .refusals import Refusal
from .tokens import NationalIdHash, digest

TIME_LIMITS = range(30, 601)  # seconds, the contract's
DEFAULT_TIME_LIMIT = 180
TRANSACTION_ID_MAX = 64
HINT_MAX = 256
SIGN_DATA_MAX = 1024  # characters, the contract's (SIGNDATA_LEN_LIMIT)
BATCH_MAX = 50  # items in one doBatchSigning (BATSIGN_CNT_LIMIT)
DEVICE_NAME_MAX = 80  # as a device's name
TICKET_VERSION = "1.0"
TAIPEI = timezone(timedelta(hours=8))
# A result stays readable until the request expires, and for at least this long after the answer, so an
# answer given in the request's last second still reaches an agency that polls every 4 s.
RESULT_KEPT_AFTER_ANSWER = timedelta(seconds=60)

OP_MODES = {"I-SCAN", "MWEB2APP", "APP2APP"}  # the person's phone scans, or is the device asking
# The modes in which the agency's page (or app) is on the phone that answers: only these go back to it.
SAME_PHONE = {"MWEB2APP", "APP2APP"}
PUSH = "PUSH"  # requestAthOrSignPush's mode: sent to the person's phones
WEB = "WEB"  # SP-API-WEB-01's (app/services/sp_web.py): MoCert's page in the person's browser; no one named
SIGN_TYPES = {"PKCS#1", "PKCS#7", "RAW"}
TBS_ENCODINGS = {"NONE", "base64"}
HASH_ALGORITHMS = {"SHA1", "SHA256", "SHA384", "SHA512"}

# doBatchSigning's checksum fields: the published documents do not show them, so MoCert takes
# requestAthOrSignPush's with op_mode, and as sign_data the items' SHA-256 hex digests concatenated in order
# (64 characters each: no other batch reads the same, as the items themselves concatenated could).
BATCH_FIELDS = (
    "transaction_id", "sp_service_id", "id_num", "device_user_def_desc", "op_code", "op_mode", "hint", "sign_data",
)
# checkDeviceStatus's, likewise not published: the call's own fields, in the order of the others.
DEVICE_STATUS_FIELDS = ("transaction_id", "sp_service_id", "id_num")
DEVICE_STATUS_ANSWER = ("transaction_id", "error_code", "is_fido", "is_mcert_sign")


@dataclass(frozen=True)
class Answer:
    """What an operation answers: ``code`` ("0", or the pending or final state of a request) and the
    ``result`` object (with its idp_checksum where the contract has one)."""

    code: str
    result: dict


class SpRequests:
    """Built once (``app/wiring.py``); the views pass the body, the caller's address and the operation."""

    def __init__(
        self,
        *,
        agencies: Agencies,
        devices: Devices,
        relying_party: RelyingParty,
        national_id_hash: NationalIdHash,
        public_url: str,
        push_notices: PushNotices | None = None,
    ) -> None:
        self.agencies, self.devices, self.relying_party = agencies, devices, relying_party
        self.national_id_hash, self.public_url = national_id_hash, public_url
        self.push_notices = push_notices  # Web Push to the phones a PUSH request waits for

    def phone_url(self, ticket: str) -> str:
        """Where a phone opens a request (MWEB2APP sends the person's browser here)."""
        return f"{self.public_url}/m/sp?sp_ticket={ticket}"

    # -- the agency's side ---------------------------------------------------------------------------------

    def get_sp_ticket(self, body: dict, address: str | None) -> Answer:
        """SP-API-ATH-01: a request to be scanned (I-SCAN) or opened on this phone (MWEB2APP, APP2APP)."""
        operation = "getSpTicket"
        agency, key = self._caller(operation, body, address, checksum.REQUEST_FIELDS[operation])
        op_code = self._one_of(operation, agency, body, "op_code", {"ATH", "SIGN"})
        op_mode = self._one_of(operation, agency, body, "op_mode", OP_MODES)
        return self._create(operation, agency, key, body, op_code=op_code, op_mode=op_mode, device_name=None)

    def request_push(self, body: dict, address: str | None) -> Answer:
        """SP-API-ATH-03: a request sent to the person's phones (all, or the one ``device_user_def_desc``
        names); it waits in their inboxes."""
        operation = "requestAthOrSignPush"
        agency, key = self._caller(operation, body, address, checksum.REQUEST_FIELDS[operation])
        op_code = self._one_of(operation, agency, body, "op_code", {"ATH", "SIGN"})
        device_name = self._text(operation, agency, body, "device_user_def_desc", DEVICE_NAME_MAX, required=False)
        return self._create(operation, agency, key, body, op_code=op_code, op_mode=PUSH, device_name=device_name)

    def batch_signing(self, body: dict, address: str | None) -> Answer:
        """SP-API-ATH-04: one approval for a set of documents (BATSIGN), by any mode, push included."""
        operation = "doBatchSigning"
        agency, key = self._caller(operation, body, address, BATCH_FIELDS, batch=True)
        self._one_of(operation, agency, body, "op_code", {"BATSIGN"})
        op_mode = self._one_of(operation, agency, body, "op_mode", OP_MODES | {PUSH})
        device_name = self._text(operation, agency, body, "device_user_def_desc", DEVICE_NAME_MAX, required=False)
        return self._create(
            operation, agency, key, body, op_code="BATSIGN", op_mode=op_mode,
            device_name=device_name if op_mode == PUSH else None,
        )

    def result(self, body: dict, address: str | None) -> Answer:
        """SP-API-ATH-02: the request's state, and once approved its result. One read, no write."""
        operation = "getAthOrSignResult"
        ticket_id = body.get("sp_ticket_id")
        token_hash = digest(ticket_id) if isinstance(ticket_id, str) and len(ticket_id) in tickets.TOKEN_LENGTHS else ""
        # The agency and its request in one statement: the request's row only if it is this agency's.
        row = db.session.execute(
            select(Agency, SpRequest)
            .outerjoin(SpRequest, and_(SpRequest.agency_id == Agency.id, SpRequest.token_hash == token_hash))
            .where(Agency.sp_service_id == _short_text(body.get("sp_service_id"), 32))
        ).first()
        agency, sp_request = (row[0], row[1]) if row is not None else (None, None)
        key = self._authenticate(operation, body, address, agency, checksum.REQUEST_FIELDS[operation])
        if sp_request is None or sp_request.transaction_id != body.get("transaction_id"):
            raise self._refused(operation, "SPTKTID_SPTKT_NF", agency, body)
        now = utcnow()
        if sp_request.op_mode == WEB and sp_request.released_at is None and sp_request.failure is None:
            # A browser's request is answered by its form posted back, once the person confirmed their ID:
            # not to a poll before that (which would skip the confirmation).
            return Answer(codes.PENDING if sp_request.expires_at > now else "SPTKT_OVD", {})
        if sp_request.completed_at is not None:
            if now >= max(sp_request.expires_at, sp_request.completed_at + RESULT_KEPT_AFTER_ANSWER):
                return Answer("SPTKT_OVD", {})
            return Answer(codes.SUCCESS, self._approved(sp_request, key))
        if sp_request.failure is not None:
            return Answer(sp_request.failure, {})
        if sp_request.expires_at <= now:
            return Answer("SPTKT_OVD", {})
        return Answer(codes.PENDING, {})

    def device_status(self, body: dict, address: str | None) -> Answer:
        """SP-API-LF-01: whether the person has a phone bound (is_fido) and one that can sign now
        (is_mcert_sign). Audited: it tells the agency whether a national ID uses MoCert."""
        operation = "checkDeviceStatus"
        agency, key = self._caller(operation, body, address, DEVICE_STATUS_FIELDS)
        account, _ = self._person(operation, agency, body)
        now = utcnow()
        devices = [] if account is None else _devices_of(account)
        is_fido = "Y" if any(d.status != DeviceStatus.REVOKED for d in devices) else "N"
        usable = account is not None and account.locked_at is None
        is_mcert_sign = "Y" if usable and any(d.effective_status(now) == DeviceStatus.ACTIVE for d in devices) else "N"
        record(
            Tags.SP_DEVICE_STATUS_CHECKED, actor=_actor(agency), account=account, agency=agency.sp_service_id,
            transaction_id=body["transaction_id"], is_fido=is_fido, is_mcert_sign=is_mcert_sign,
        )
        db.session.commit()
        answer = {"transaction_id": body["transaction_id"], "error_code": codes.SUCCESS,
                  "is_fido": is_fido, "is_mcert_sign": is_mcert_sign}
        return Answer(codes.SUCCESS, {
            "is_fido": is_fido, "is_mcert_sign": is_mcert_sign,
            "idp_checksum": checksum.seal(key, checksum.fields_of(answer, DEVICE_STATUS_ANSWER)),
        })

    # -- the phone's side (no session: the ticket is the capability, the passkey the proof) ----------------

    def phone_options(self, ticket: object, *, return_url: object = None) -> dict:
        """What the phone shows, and the request options its passkey answers (the person's phones only).

        ``return_url`` is the agency's ``rtn_url`` as the phone's page was given it; it is answered back as
        ``return_url`` only where :meth:`return_url` allows it, else None."""
        return self._options_of(self._open(self._by_ticket(ticket)), return_url=return_url)

    def _options_of(self, sp_request: SpRequest, device: Device | None = None, *, return_url: object = None) -> dict:
        """The options of an open request, for its approvers (or only ``device``, in that phone's inbox)."""
        # The first scan is audited once: of two phones scanning at once, the one whose UPDATE set it.
        if sp_request.scanned_at is None and tickets.claim(
            sp_request, SpRequest.scanned_at.is_(None), scanned_at=utcnow(), commit=False,
        ):
            record(Tags.SP_REQUEST_SCANNED, account=sp_request.account, agency=sp_request.agency.sp_service_id,
                   sp_request=sp_request.public_id)
            db.session.commit()
        # A request naming no one (WEB) asks for a discoverable credential: any person's phone may answer.
        devices = self._approvers(sp_request) if sp_request.account_id is not None else []
        if device is not None:
            devices = [d for d in devices if d.id == device.id]
            if not devices:  # never options any passkey would answer (no allowCredentials)
                raise Refusal("DEVID_SPTKT_MISMATCH", case="sp_phone")
        info = sp_request.sign_info or {}
        shown = {
            "sp_name": sp_request.agency.name,
            "hint": sp_request.hint,
            "op_code": sp_request.op_code,
            "expires_at": sp_request.expires_at.isoformat(),
            "return_url": self.return_url(sp_request, return_url),
            **webauthn.authentication_options(
                rp_id=self.relying_party.id,
                challenge=sp_request.challenge,
                allow_credentials=[(d.credential_id, d.transports or ()) for d in devices],
                user_verification="required",
                timeout_ms=max(1000, int((sp_request.expires_at - utcnow()).total_seconds() * 1000)),
            ),
        }
        if sp_request.op_code == "SIGN":
            shown["sign_data"] = info.get("sign_data", "")
        if sp_request.op_code == "BATSIGN":
            shown["sign_data_set"] = list(info.get("sign_data_set", ()))
        return shown

    def approve(self, ticket: object, credential: object) -> SpRequest:
        """The phone's assertion over the request's challenge: checked, then the request taken (one
        transaction). Raises :class:`Refusal` (case ``sp_phone``, or the WebAuthn reason)."""
        if not isinstance(credential, dict):
            raise Refusal("malformed_input", case="sp_answer")
        return self._approve(self._open(self._by_ticket(ticket)), credential)

    def _approve(self, sp_request: SpRequest, credential: dict, inbox_device: Device | None = None) -> SpRequest:
        """Check an open request's answer and take the request (see :meth:`approve`); from a phone's inbox,
        only that phone's passkey answers."""
        device = by_credential(credential)
        refusal = self._not_an_approver(sp_request, device)
        if refusal is None and inbox_device is not None and device.id != inbox_device.id:
            refusal = Refusal("DEVID_SPTKT_MISMATCH", case="sp_phone")  # from an inbox, only its own phone
        if refusal is not None:
            raise self._answer_failed(sp_request, device, refusal)
        try:
            verified = self.devices.verify_assertion(device, credential, sp_request.challenge)
        except Refusal as refusal:
            raise self._answer_failed(sp_request, device, refusal) from None
        certificate = device.certificate
        signed = SignedResponse(
            challenge_input=sp_request.challenge_input,
            credential_id=device.credential_id,
            authenticator_data=verified.authenticator_data,
            client_data_json=verified.client_data_json,
            signature=verified.signature,
        ).encode()
        now = utcnow()
        if not self._take(sp_request, now, completed_at=now, device_id=device.id, account_id=device.account_id,
                          signed_response=signed, cert=base64.b64encode(certificate.der).decode("ascii")):
            raise self._taken(sp_request)
        record(Tags.SP_REQUEST_APPROVED, account=device.account, agency=sp_request.agency.sp_service_id,
               sp_request=sp_request.public_id, transaction_id=sp_request.transaction_id, op_code=sp_request.op_code,
               device=device.id)
        db.session.commit()
        return sp_request

    def decline(self, ticket: object) -> SpRequest:
        """The person said no on the phone: the agency's poll answers APP_USER_CANCEL from now on."""
        return self._decline(self._open(self._by_ticket(ticket)))

    def _decline(self, sp_request: SpRequest, device: Device | None = None) -> SpRequest:
        if not self._take(sp_request, utcnow(), failure="APP_USER_CANCEL"):
            raise self._taken(sp_request)
        record(Tags.SP_REQUEST_DECLINED, account=sp_request.account, agency=sp_request.agency.sp_service_id,
               sp_request=sp_request.public_id, transaction_id=sp_request.transaction_id,
               **({"device": device.id} if device is not None else {}))
        db.session.commit()
        return sp_request

    # -- the phone's inbox (app/services/inbox.py: the phone is known by its inbox token, not a ticket) -----

    def inbox_options(self, device: Device, public_id: object) -> dict:
        """:meth:`phone_options` for a request in ``device``'s inbox, named by its ``public_id``."""
        return self._options_of(self._in_inbox(device, public_id), device)

    def inbox_approve(self, device: Device, public_id: object, credential: object) -> SpRequest:
        """:meth:`approve` of a request in ``device``'s inbox, with that phone's passkey."""
        if not isinstance(credential, dict):
            raise Refusal("malformed_input", case="sp_answer")
        return self._approve(self._in_inbox(device, public_id), credential, device)

    def inbox_decline(self, device: Device, public_id: object) -> SpRequest:
        """:meth:`decline` of a request in ``device``'s inbox."""
        return self._decline(self._in_inbox(device, public_id), device)

    def _in_inbox(self, device: Device, public_id: object) -> SpRequest:
        """The open request ``public_id`` names, if it was pushed to this phone: to it, or to all its person's
        phones. Another phone's or another person's is as unknown as a made-up one."""
        sp_request = None
        if isinstance(public_id, str) and 0 < len(public_id) <= 64:
            sp_request = db.session.scalar(select(SpRequest).where(SpRequest.public_id == public_id))
        if sp_request is None or sp_request.op_mode != PUSH or sp_request.account_id != device.account_id \
                or sp_request.target_device_id not in (None, device.id):
            raise Refusal("SPTKTID_SPTKT_NF", case="sp_phone")
        return self._open(sp_request)

    def return_url(self, sp_request: SpRequest, url: object) -> str | None:
        """Where a same-phone request (MWEB2APP, APP2APP) may send the person back: a URL of the agency's
        registered callback's origin, else nowhere (the page says to go back by hand; never an open redirect).
        A request scanned from another screen (I-SCAN) or pushed has no page on this phone to go back to."""
        callback = sp_request.agency.callback_url
        if sp_request.op_mode not in SAME_PHONE:
            return None
        if not isinstance(url, str) or not callback or len(url) > agency_rules.URL_MAX:
            return None
        try:
            wanted, registered = urlsplit(url), urlsplit(callback)
        except ValueError:
            return None
        if (wanted.scheme, wanted.netloc) != (registered.scheme, registered.netloc) or not wanted.netloc:
            return None
        return url

    # -- making a request ----------------------------------------------------------------------------------

    def _create(
        self, operation: str, agency: Agency, key: bytes, body: dict, *, op_code: str, op_mode: str,
        device_name: str | None,
    ) -> Answer:
        transaction_id = body["transaction_id"]
        hint = self._text(operation, agency, body, "hint", HINT_MAX, required=False) or ""
        ttl = self._time_limit(operation, agency, body)
        sign_info, signed_data = self._sign_info(operation, agency, body, op_code)
        account, national_id = self._person(operation, agency, body)
        if account is None or account.locked_at is not None:
            raise self._refused(operation, "IDNUM_USERPROF_NF", agency, body,
                                reason="locked" if account is not None else "unknown")
        usable = _usable_devices(account)
        if not usable:
            raise self._refused(operation, "IDNUM_DEVPROF_NF", agency, body, account=account)
        target = None
        if device_name:
            target = next((d for d in usable if d.name == device_name), None)
            if target is None:
                raise self._refused(operation, "DEV_DESC_MISMATCH", agency, body, account=account)
        sp_request, issued = self._issue(
            operation, agency, body, ttl=ttl, account=account, hashed_id_num=sp_ticket.hashed_id_num(national_id),
            op_code=op_code, op_mode=op_mode, hint=hint, sign_info=sign_info, signed_data=signed_data,
            target_device=target,
        )
        answer = {"transaction_id": transaction_id, "error_code": codes.SUCCESS, "sp_ticket": issued}
        return Answer(codes.SUCCESS, {
            "sp_ticket": issued,
            "idp_checksum": checksum.seal(key, checksum.fields_of(answer, checksum.ANSWER_FIELDS["ticket"])),
        })

    def _issue(
        self, operation: str, agency: Agency, body: dict, *, ttl: timedelta, account: Account | None,
        hashed_id_num: str | None, op_code: str, op_mode: str, hint: str, sign_info: dict | None,
        signed_data: str | list[str] | None, target_device: Device | None = None, **columns: object,
    ) -> tuple[SpRequest, str]:
        """Make the request (committed, with its audit event) and its sp_ticket, once its transaction_id is
        shown unused; ``columns`` are further values of the row (WEB-01's browser token)."""
        transaction_id = body["transaction_id"]
        if db.session.scalar(select(SpRequest.id).where(
            SpRequest.agency_id == agency.id, SpRequest.transaction_id == transaction_id,
        )) is not None:
            raise self._refused(operation, "TXNLOG_INS_ERR", agency, body, account=account)

        sp_request, ticket_id = tickets.issue(
            SpRequest, ttl=ttl, agency=agency, transaction_id=transaction_id, account=account,
            hashed_id_num=hashed_id_num, op_code=op_code, op_mode=op_mode, hint=hint,
            sign_info=sign_info, target_device=target_device, ticket_check="",
            challenge_input="", **columns,
        )
        sp_request.challenge_input = challenge_input(
            hint=hint, op_code=op_code, sign_data=signed_data, sp_service_id=agency.sp_service_id,
            sp_ticket_id=ticket_id, transaction_id=transaction_id,
        )
        sp_request.challenge = challenge(sp_request.challenge_input)
        issued = sp_ticket.encode({
            "transaction_id": transaction_id,
            "op_code": op_code,
            "op_mode": op_mode,
            "sp_service_id": agency.sp_service_id,
            "sp_ticket_id": ticket_id,
            "sp_name": agency.name,
            "hint": hint,
            "expiration_time": sp_request.expires_at.astimezone(TAIPEI).isoformat(timespec="seconds"),
            "hashed_id_num": sp_request.hashed_id_num,
            "version": TICKET_VERSION,
        })
        sp_request.ticket_check = issued.rsplit(".", 1)[1]
        try:
            db.session.flush()
        except IntegrityError:  # the same transaction_id, made a moment ago by a call racing this one
            raise self._refused(operation, "TXNLOG_INS_ERR", agency, body, account=account, race=True) from None
        record(Tags.SP_REQUEST_MADE, actor=_actor(agency), account=account, agency=agency.sp_service_id,
               operation=operation, sp_request=sp_request.public_id, transaction_id=transaction_id,
               op_code=op_code, op_mode=op_mode, device=target_device.id if target_device else None)
        db.session.commit()
        if op_mode == PUSH and self.push_notices is not None:
            self.push_notices.announce(sp_request)  # committed first; never raises: the request waits anyway
        return sp_request, issued

    def _approved(self, sp_request: SpRequest, key: bytes) -> dict:
        answer = {"transaction_id": sp_request.transaction_id, "error_code": codes.SUCCESS,
                  "hashed_id_num": sp_request.hashed_id_num, "signed_response": sp_request.signed_response}
        return {
            "hashed_id_num": sp_request.hashed_id_num,
            "signed_response": sp_request.signed_response,
            "cert": sp_request.cert,
            "idp_checksum": checksum.seal(key, checksum.fields_of(answer, checksum.ANSWER_FIELDS["result"])),
        }

    # -- authentication and input ----------------------------------------------------------------------

    def _caller(
        self, operation: str, body: dict, address: str | None, fields: tuple[str, ...], *, batch: bool = False,
    ) -> tuple[Agency, bytes]:
        agency = agency_rules.by_service_id(body.get("sp_service_id"))
        return agency, self._authenticate(operation, body, address, agency, fields, batch=batch)

    def _authenticate(
        self, operation: str, body: dict, address: str | None, agency: Agency | None, fields: tuple[str, ...],
        *, batch: bool = False, check_address: bool = True,
    ) -> bytes:
        """The agency's key, once the call is shown to be the agency's; else the refusal, audited.

        ``check_address`` false: the call comes from the person's browser (SP-API-WEB-01's form), not from
        the agency's servers, so only the checksum shows it is the agency's."""
        transaction_id = body.get("transaction_id")
        if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= TRANSACTION_ID_MAX \
                or not storable(transaction_id):
            raise self._refused(operation, "PM_INV_NF", agency, body, field="transaction_id")
        if agency is None or agency.disabled_at is not None:
            raise self._refused(operation, "SPSVCID_NF", agency, body,
                                reason="disabled" if agency is not None else "unknown")
        if check_address and not agency_rules.allows_address(agency, address):
            raise self._refused(operation, "SP_IP_DENIED", agency, body)
        key = self.agencies.key_of(agency)
        try:
            checksum.verify(key, checksum.fields_of(_checked_values(body, batch), fields), body.get("sp_checksum"))
        except checksum.ChecksumError as exc:
            raise self._refused(operation, "INV_SP_CHECKSUM", agency, body, reason=str(exc)) from None
        return key

    def _person(self, operation: str, agency: Agency, body: dict) -> tuple[Account | None, str]:
        value = body.get("id_num")
        try:
            national_id = nid.normalize(value) if isinstance(value, str) else None
        except nid.InvalidNationalId:
            national_id = None
        if national_id is None:
            raise self._refused(operation, "PM_IDN_FT_ERR", agency, body)
        account = db.session.scalar(select(Account).where(Account.national_id_hash == self.national_id_hash(national_id)))
        return account, national_id

    def _one_of(self, operation: str, agency: Agency, body: dict, name: str, allowed: set[str]) -> str:
        value = body.get(name)
        if not isinstance(value, str) or value not in allowed:
            raise self._refused(operation, "TGT_INV", agency, body, field=name)
        return value

    def _text(
        self, operation: str, agency: Agency, body: dict, name: str, limit: int, *, required: bool,
    ) -> str | None:
        value = body.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or len(value) > limit or not storable(value):
            raise self._refused(operation, "PM_INV_NF", agency, body, field=name)
        return value

    def _time_limit(self, operation: str, agency: Agency, body: dict) -> timedelta:
        value = body.get("time_limit")
        if value is None or value == "":
            return timedelta(seconds=DEFAULT_TIME_LIMIT)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._refused(operation, "SPTKT_TIME_FT_ERR", agency, body)
        if value not in TIME_LIMITS:
            raise self._refused(operation, "SPTKT_TIME_ORV", agency, body, time_limit=value)
        return timedelta(seconds=value)

    def _sign_info(
        self, operation: str, agency: Agency, body: dict, op_code: str,
    ) -> tuple[dict | None, str | list[str] | None]:
        """The stored sign_info and what the challenge covers of it (the text, or the batch's digests)."""
        info = body.get("sign_info")
        if op_code == "ATH":
            return None, None
        if not isinstance(info, dict):
            raise self._refused(operation, "PM_INV_NF", agency, body, field="sign_info")
        stored = {}
        for name, allowed, default in (
            ("sign_type", SIGN_TYPES, "PKCS#1"), ("tbs_encoding", TBS_ENCODINGS, "NONE"),
            ("hash_algorithm", HASH_ALGORITHMS, "SHA256"),
        ):
            value = info.get(name, default)
            if not isinstance(value, str) or value not in allowed:
                raise self._refused(operation, "PM_INV_NF", agency, body, field=f"sign_info.{name}")
            stored[name] = value
        if op_code == "SIGN":
            items = [info.get("sign_data")]
        else:
            items = info.get("sign_data_set")
            if not isinstance(items, list) or not items:
                raise self._refused(operation, "PM_INV_NF", agency, body, field="sign_info.sign_data_set")
            if len(items) > BATCH_MAX:
                raise self._refused(operation, "BATSIGN_CNT_LIMIT", agency, body, items=len(items), max=BATCH_MAX)
        for item in items:
            if not isinstance(item, str) or not item or not storable(item):
                raise self._refused(operation, "PM_INV_NF", agency, body, field="sign_info.sign_data")
            if len(item) > SIGN_DATA_MAX:
                raise self._refused(operation, "SIGNDATA_LEN_LIMIT", agency, body, length=len(item))
            if stored["tbs_encoding"] == "base64" and not _is_base64(item):
                raise self._refused(operation, "PM_INV_NF", agency, body, field="sign_info.sign_data")
        if op_code == "SIGN":
            return {**stored, "sign_data": items[0]}, items[0]
        return {**stored, "sign_data_set": items}, batch_digests(items)

    def _refused(self, operation: str, code: str, agency: Agency | None, body: dict, *,
                 account: Account | None = None, **facts: object) -> Refusal:
        """Undo whatever the call began, audit the refusal (committed), and return it to raise."""
        db.session.rollback()
        record(
            Tags.SP_API_REFUSED, actor=_actor(agency), account=account, operation=operation, code=code,
            agency=agency.sp_service_id if agency is not None else _short_text(body.get("sp_service_id"), 40),
            transaction_id=_short_text(body.get("transaction_id"), TRANSACTION_ID_MAX), **facts,
        )
        db.session.commit()
        return Refusal(code, case="sp_api")

    # -- answering on the phone ----------------------------------------------------------------------------

    def _by_ticket(self, ticket: object) -> SpRequest:
        """The request an sp_ticket names, if the whole ticket is the one MoCert made for it."""
        try:
            fields = sp_ticket.decode(ticket)
        except sp_ticket.TicketError as exc:
            raise Refusal("SPTKT_DIG_FT_ERR" if "digest" in str(exc) else "SPTKT_PLD_FT_ERR", case="sp_phone") from None
        sp_request = tickets.by_token(SpRequest, fields["sp_ticket_id"])
        if sp_request is None:
            raise Refusal("SPTKTID_SPTKT_NF", case="sp_phone")
        if sp_request.ticket_check != ticket.rsplit(".", 1)[1]:  # a real id in a ticket that says other things
            raise Refusal("SPTKT_DIG_FT_ERR", case="sp_phone")
        return sp_request

    def _open(self, sp_request: SpRequest) -> SpRequest:
        if sp_request.consumed_at is not None:
            raise Refusal("SPTKTID_SPTKT_RDM", case="sp_phone")
        if sp_request.expires_at <= utcnow():
            raise Refusal("SPTKT_OVD", case="sp_phone")
        if sp_request.agency.disabled_at is not None:
            raise Refusal("SPTKT_OVD", case="sp_phone")
        return sp_request

    def _approvers(self, sp_request: SpRequest) -> list[Device]:
        """The phones that may answer: the one it was pushed to, or any usable phone of the person."""
        usable = _usable_devices(sp_request.account)
        if sp_request.target_device_id is not None:
            return [d for d in usable if d.id == sp_request.target_device_id]
        return usable

    def _not_an_approver(self, sp_request: SpRequest, device: Device | None) -> Refusal | None:
        """Why this phone may not answer, or None: it must be one of the person's approvers, or, for a
        request naming no one (WEB-01), any usable phone of an unlocked account (its owner is then the
        person), told why not (suspended, expired, locked) as a login is."""
        if device is None:
            return Refusal("DEVID_SPTKT_MISMATCH", case="sp_phone")
        if sp_request.account_id is None:
            try:
                ensure_usable(device, utcnow())
            except Refusal as refusal:
                return refusal
            return None
        return None if device in self._approvers(sp_request) else Refusal("DEVID_SPTKT_MISMATCH", case="sp_phone")

    @staticmethod
    def _take(sp_request: SpRequest, now: datetime, **values: object) -> bool:
        """Take the request's one answer in one conditional UPDATE, not committed: the caller commits it
        with the device's counter and the audit event."""
        return tickets.claim(
            sp_request, SpRequest.consumed_at.is_(None), SpRequest.expires_at > now, consumed_at=now, commit=False,
            **values,
        )

    def _taken(self, sp_request: SpRequest) -> Refusal:
        db.session.rollback()
        db.session.refresh(sp_request)
        return Refusal("SPTKTID_SPTKT_RDM" if sp_request.consumed_at is not None else "SPTKT_OVD",
                       case="sp_phone")

    def _answer_failed(self, sp_request: SpRequest, device: Device | None, refusal: Refusal) -> Refusal:
        """Audit a refused answer (committed); the request stays open for the person's own phone."""
        db.session.rollback()  # nothing half-done (a possibly-cloned mark is committed already)
        record(
            Tags.SP_APPROVAL_FAILURE, account=device.account if device is not None else None,
            agency=sp_request.agency.sp_service_id, sp_request=sp_request.public_id,
            device=device.id if device is not None else None, reason=refusal.code,
        )
        db.session.commit()
        return refusal


def _usable_devices(account: Account) -> list[Device]:
    now = utcnow()
    usable = []
    for device in _devices_of(account):
        try:
            ensure_usable(device, now)
        except Refusal:
            continue
        usable.append(device)
    return usable


def _devices_of(account: Account) -> list[Device]:
    return list(db.session.scalars(select(Device).where(Device.account_id == account.id).order_by(Device.id)))


def _checked_values(body: dict, batch: bool) -> dict:
    """The body's values as the checksum reads them: sign_data from inside sign_info (for a batch, its
    items' digests concatenated; an item that is not text counts as its str() here, and is refused after
    the checksum)."""
    info = body.get("sign_info") if isinstance(body.get("sign_info"), dict) else {}
    if batch:
        items = info.get("sign_data_set")
        sign_data = "".join(batch_digests([str(i) for i in items])) if isinstance(items, list) else None
    else:
        sign_data = info.get("sign_data")
    return {**body, "sign_data": sign_data}


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _short_text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _actor(agency: Agency | None) -> str:
    return f"agency:{agency.sp_service_id}" if agency is not None else "anonymous"
