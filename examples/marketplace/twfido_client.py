"""The marketplace's client of MoCert's TW FidO API for agencies (需用機關), over ``requests`` and ``twfido``.

The marketplace calls MoCert from its server, as an agency calls the government's TW FidO service: it asks
for a ticket (``getSpTicket``, I-SCAN: shown as a QR code) or a push to the person's phones
(``requestAthOrSignPush``), then polls ``getAthOrSignResult``. What the contract says must be computed (the
checksums, the ticket, the challenge_input, the signed response's check) is the shipped ``twfido``
package's; this module only sends, and checks every answer before it is believed:

- each answer's ``idp_checksum`` under the marketplace's key, and that it is about our transaction;
- the ticket names our transaction and the national ID we sent;
- an approval's ``signed_response`` verifies with its certificate, issued by MoCert's mobile CA (fetched
  once from ``<MoCert>/pki/mobile/ca.cer``), over the challenge_input this module rebuilds itself from
  what it sent, for MoCert's WebAuthn site (``rp_id``).

Errors are this module's own: :class:`Refused` (MoCert answered a code: the person is unknown, declined,
the ticket expired...), :class:`Unavailable` (MoCert could not be asked), :class:`Untrusted` (an answer
failed a check: it is not believed, whatever it says).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass

import requests
from cryptography import x509
from cryptography.x509.oid import NameOID

from twfido import checksum, codes
from twfido import ticket as sp_ticket
from twfido.challenge import challenge_input
from twfido.signed_response import SignedResponseError, verify

CA_PATH = "/pki/mobile/ca.cer"
POLL_INTERVAL_SECONDS = 4  # the contract's: an agency polls a result at most this often
TIME_LIMIT_SECONDS = 180  # how long the person has to answer on the phone
I_SCAN = "I-SCAN"
ATH = "ATH"


class TwFidoError(Exception):
    """Anything this client could not do; the subclasses say why."""


class Refused(TwFidoError):
    """MoCert answered a code other than success or "not answered yet"."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code, self.message = code, message  # the bare code, e.g. APP_USER_CANCEL


class Unavailable(TwFidoError):
    """MoCert could not be reached, or answered something that is not the contract's envelope."""


class Untrusted(TwFidoError):
    """An answer failed a check (checksum, ticket, signature): it is not believed."""


@dataclass(frozen=True)
class Request:
    """A request MoCert accepted: what is kept between polls, and all the result's check needs."""

    transaction_id: str
    sp_ticket: str
    op_mode: str  # I-SCAN or PUSH (the ticket's own)
    hint: str
    hashed_id_num: str  # the contract's hash of the national ID we sent

    @property
    def sp_ticket_id(self) -> str:
        return sp_ticket.decode(self.sp_ticket)["sp_ticket_id"]


@dataclass(frozen=True)
class Approval:
    """What a verified result proves: the person of ``hashed_id_num`` approved our request on a phone
    holding a mobile certificate MoCert's CA issued (to ``name``)."""

    hashed_id_num: str
    name: str
    certificate_serial: str


class TwFidoClient:
    def __init__(
        self, base_url: str, *, sp_service_id: str, api_key: str, rp_id: str, timeout: float = 10,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.sp_service_id, self.rp_id, self.timeout = sp_service_id, rp_id, timeout
        self._key = checksum.agency_key(api_key)
        self._http = session or requests.Session()
        self._ca: x509.Certificate | None = None

    # -- the operations --------------------------------------------------------------------------------

    def ticket(self, id_num: str, *, hint: str, time_limit: int = TIME_LIMIT_SECONDS) -> Request:
        """``getSpTicket`` (ATH, I-SCAN): a ticket for the person's phone to scan."""
        body = self._body(id_num, hint, time_limit, op_mode=I_SCAN)
        return self._requested("getSpTicket", body, id_num)

    def push(self, id_num: str, *, hint: str, time_limit: int = TIME_LIMIT_SECONDS) -> Request:
        """``requestAthOrSignPush`` (ATH): the request sent to the person's phones."""
        return self._requested("requestAthOrSignPush", self._body(id_num, hint, time_limit), id_num)

    def result(self, request: Request) -> Approval | None:
        """``getAthOrSignResult``: None while the person has not answered; the verified approval once they
        approved. Raises :class:`Refused` (APP_USER_CANCEL, SPTKT_OVD...), :class:`Unavailable`,
        :class:`Untrusted`. Call it at most every :data:`POLL_INTERVAL_SECONDS`."""
        operation = "getAthOrSignResult"
        body = {"transaction_id": request.transaction_id, "sp_service_id": self.sp_service_id,
                "sp_ticket_id": request.sp_ticket_id}
        answer = self._call(operation, body)
        if answer["error_code"] == codes.PENDING:
            return None
        result = answer["result"]
        values = {"transaction_id": answer["transaction_id"], "error_code": answer["error_code"],
                  "hashed_id_num": result.get("hashed_id_num"), "signed_response": result.get("signed_response")}
        self._check_answer(values, checksum.ANSWER_FIELDS["result"], result.get("idp_checksum"))
        if values["hashed_id_num"] != request.hashed_id_num:
            raise Untrusted("the result is about another person than the one asked")
        expected = challenge_input(
            hint=request.hint, op_code=ATH, sign_data=None, sp_service_id=self.sp_service_id,
            sp_ticket_id=request.sp_ticket_id, transaction_id=request.transaction_id,
        )
        try:
            certificate_der = base64.b64decode(result.get("cert") or "", validate=True)
            approval = verify(values["signed_response"], certificate_der, ca=self.mobile_ca(),
                              expected_input=expected, rp_id=self.rp_id)
        except (SignedResponseError, binascii.Error, ValueError) as exc:
            raise Untrusted(f"the signed response does not verify: {exc}") from exc
        names = approval.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return Approval(hashed_id_num=values["hashed_id_num"], name=str(names[0].value) if names else "",
                        certificate_serial=f"{approval.certificate.serial_number:x}")

    def mobile_ca(self) -> x509.Certificate:
        """MoCert's mobile CA certificate, fetched once. (A real agency would pin it, not fetch it.)"""
        if self._ca is None:
            try:
                response = self._http.get(self.base_url + CA_PATH, timeout=self.timeout)
                response.raise_for_status()
                self._ca = x509.load_der_x509_certificate(response.content)
            except requests.RequestException as exc:
                raise Unavailable(f"MoCert's mobile CA cannot be fetched: {exc}") from exc
            except ValueError as exc:
                raise Untrusted(f"{CA_PATH} is not a DER certificate") from exc
        return self._ca

    # -- sending and checking --------------------------------------------------------------------------

    def _body(self, id_num: str, hint: str, time_limit: int, **extra: str) -> dict:
        return {"transaction_id": str(uuid.uuid4()), "sp_service_id": self.sp_service_id, "id_num": id_num,
                "op_code": ATH, **extra, "hint": hint, "time_limit": time_limit}

    def _requested(self, operation: str, body: dict, id_num: str) -> Request:
        answer = self._call(operation, body)
        issued = answer["result"].get("sp_ticket")
        values = {"transaction_id": answer["transaction_id"], "error_code": answer["error_code"], "sp_ticket": issued}
        self._check_answer(values, checksum.ANSWER_FIELDS["ticket"], answer["result"].get("idp_checksum"))
        try:
            fields = sp_ticket.decode(issued)
        except sp_ticket.TicketError as exc:
            raise Untrusted(f"the sp_ticket is not one: {exc}") from exc
        hashed = sp_ticket.hashed_id_num(id_num)
        if fields.get("transaction_id") != body["transaction_id"] or fields.get("hashed_id_num") != hashed \
                or fields.get("sp_service_id") != self.sp_service_id:
            raise Untrusted("the sp_ticket is not of this request")
        return Request(transaction_id=body["transaction_id"], sp_ticket=issued, op_mode=str(fields.get("op_mode")),
                       hint=body["hint"], hashed_id_num=hashed)

    def _call(self, operation: str, body: dict) -> dict:
        """POST the signed body; the envelope of a success or pending answer, else :class:`Refused`."""
        values = {**body, "sign_data": None}  # ATH signs no data
        signed = {**body, "sp_checksum": checksum.seal(self._key, checksum.fields_of(
            values, checksum.REQUEST_FIELDS[operation]))}
        try:
            response = self._http.post(f"{self.base_url}/moise/sp/{operation}", json=signed, timeout=self.timeout)
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise Unavailable(f"{operation}: MoCert cannot be asked: {exc}") from exc
        if response.status_code != 200 or not isinstance(answer, dict) or not isinstance(answer.get("result"), dict) \
                or not isinstance(answer.get("error_code"), str):
            raise Unavailable(f"{operation}: not the contract's answer (HTTP {response.status_code})")
        if answer.get("transaction_id") != body["transaction_id"]:
            raise Untrusted(f"{operation}: the answer is about another transaction")
        code = answer["error_code"]
        if code not in (codes.SUCCESS, codes.PENDING):
            prefix = codes.INTERFACES[operation] + "-"
            raise Refused(code.removeprefix(prefix), str(answer.get("error_message") or ""))
        return answer

    def _check_answer(self, values: dict, order: tuple[str, ...], sealed: object) -> None:
        try:
            checksum.verify(self._key, checksum.fields_of(values, order), sealed)
        except checksum.ChecksumError as exc:
            raise Untrusted(f"idp_checksum: {exc}") from exc
