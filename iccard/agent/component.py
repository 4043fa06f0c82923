"""The component's functions, free of HTTP: list the cards, sign for a trusted site."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from .. import signer
from ..errors import CardError, NoCard
from ..piv import PivSession, Slot
from ..transport import Reader
from . import protocol
from .trust import TrustList

PIN_FORMAT = re.compile(r"^[0-9]{6,8}$")


class LocalComponent:
    """What the HTTP agent serves. ``readers`` is asked afresh each time: cards come and go."""

    def __init__(self, readers: Callable[[], Sequence[Reader]], trust: TrustList) -> None:
        self._readers = readers
        self.trust = trust
        # One card conversation at a time: a PIN check and a signature must not interleave.
        self._card_lock = threading.Lock()

    def handle(self, request: dict, origin: str | None) -> dict:
        """Answer one request (``MakeSignature``, ``GetUserCert``, ``CheckEnvir``) for ``origin``.

        ``origin`` is the asking web site, or ``None`` for a program on this computer. A site must be on
        the trust list even to read the certificates: they name the person.
        """
        func = request.get("func")
        if origin is not None and origin not in self.trust:
            return protocol.failure("sign" if func == "MakeSignature" else "pkcs11info", protocol.SITE_NOT_TRUSTED, 0,
                                    "site not trusted", site=origin)
        if func == "MakeSignature":
            return self.make_signature(request)
        if func == "GetUserCert":
            return self.pkcs11info(with_cert=True)
        if func == "CheckEnvir":
            return self.pkcs11info(with_cert=False)
        return protocol.failure(str(func or ""), protocol.BAD_REQUEST, protocol.CKR_ARGUMENTS_BAD, "unknown func")

    def pkcs11info(self, *, with_cert: bool) -> dict:
        slots = []
        with self._card_lock:
            try:
                readers = self._readers()
            except CardError as exc:  # no PC/SC service: say so rather than list nothing
                return protocol.card_failure("pkcs11info", exc)
            for reader in readers:
                slots.append({"slotDescription": reader.name, "token": self._token(reader, with_cert)})
        return {"func": "pkcs11info", "ret_code": protocol.OK, "last_error": 0, "version": protocol.VERSION, "slots": slots}

    def make_signature(self, request: dict) -> dict:
        """Sign as ``MakeSignature`` asks (the caller has checked who asks)."""
        pin = request.get("pin")
        if not isinstance(pin, str) or not PIN_FORMAT.match(pin):
            return protocol.failure("sign", protocol.BAD_REQUEST, protocol.CKR_PIN_LEN_RANGE, "the PIN is 6 to 8 digits")
        try:
            sign_request = signer.SignRequest.from_make_signature(request)
        except signer.SignRequestError as exc:
            return protocol.failure("sign", protocol.BAD_REQUEST, protocol.CKR_ARGUMENTS_BAD, str(exc))
        with self._card_lock:
            try:
                reader = self._pick(request.get("slotDescription"))
                if reader is None:
                    return protocol.card_failure("sign", NoCard("no card in the reader"))
                connection = reader.connect()
                try:
                    session = PivSession(connection)
                    certificate = session.get_certificate(Slot.SIGNATURE)
                    if certificate.not_valid_after_utc <= datetime.now(timezone.utc):
                        return protocol.failure("sign", protocol.CARD_EXPIRED, 0, "the card has expired")
                    result = signer.sign(session, pin, sign_request)
                finally:
                    connection.close()
            except CardError as exc:
                return protocol.card_failure("sign", exc)
        return protocol.sign_response(result.signature, result.certificate, result.card_number)

    def _pick(self, description: object) -> Reader | None:
        present = [reader for reader in self._readers() if reader.has_card()]
        if isinstance(description, str) and description:
            return next((reader for reader in present if reader.name == description), None)
        return present[0] if present else None

    def _token(self, reader: Reader, with_cert: bool) -> dict | None:
        if not reader.has_card():
            return None
        try:
            connection = reader.connect()
            try:
                session = PivSession(connection)
                token: dict = {"serialNumber": session.card_number()}
                if with_cert:
                    certificate = session.get_certificate(Slot.SIGNATURE)
                    token["certs"] = [protocol.certificate_entry("cert1", certificate)]
            finally:
                connection.close()
        except CardError:
            return None
        return token
