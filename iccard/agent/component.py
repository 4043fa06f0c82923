"""The component's functions, free of HTTP: list the cards, sign for a trusted site."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from .. import signer
from ..cards import CardSlot
from ..errors import CardError, NoCard
from . import protocol
from .trust import TrustList

PIN_FORMAT = re.compile(r"^[0-9]{6,8}$")


class LocalComponent:
    """What the HTTP agent serves. ``slots`` is asked afresh each time: cards come and go."""

    def __init__(self, slots: Callable[[], Sequence[CardSlot]], trust: TrustList) -> None:
        self._slots = slots
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
                present = self._slots()
            except CardError as exc:  # no PC/SC service: say so rather than list nothing
                return protocol.card_failure("pkcs11info", exc)
            for slot in present:
                slots.append({"slotDescription": slot.name, "token": self._token(slot, with_cert)})
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
                slot = self._pick(request.get("slotDescription"))
                if slot is None:
                    return protocol.card_failure("sign", NoCard("no card in the reader"))
                with slot.open() as card:
                    certificate = card.signing_certificate()
                    if certificate.not_valid_after_utc <= datetime.now(timezone.utc):
                        return protocol.failure("sign", protocol.CARD_EXPIRED, 0, "the card has expired")
                    result = signer.sign(card, pin, sign_request)
            except CardError as exc:
                return protocol.card_failure("sign", exc)
        return protocol.sign_response(result.signature, result.certificate, result.card_number)

    def _pick(self, description: object) -> CardSlot | None:
        present = [slot for slot in self._slots() if slot.has_card()]
        if isinstance(description, str) and description:
            return next((slot for slot in present if slot.name == description), None)
        return present[0] if present else None

    def _token(self, slot: CardSlot, with_cert: bool) -> dict | None:
        if not slot.has_card():
            return None
        try:
            with slot.open() as card:
                token: dict = {"serialNumber": card.card_number()}
                if with_cert:
                    token["certs"] = [protocol.certificate_entry("cert1", card.signing_certificate())]
        except CardError:
            return None
        return token
