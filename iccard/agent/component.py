"""The component's functions, free of HTTP: list the cards, sign, decrypt and change the PIN for a trusted site."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from urllib.parse import unquote

from .. import decrypter, signer
from ..cards import CardSlot
from ..errors import CardError
from ..formats import PIN_FORMAT
from . import protocol
from .trust import TrustList

SETTINGS_PATH = "/settings"


class _Refusal(Exception):
    """An answer decided before the card is reached (bad PIN format, no reader, no card)."""

    def __init__(self, answer: dict) -> None:
        super().__init__(answer.get("message", ""))
        self.answer = answer


class LocalComponent:
    """What the HTTP agent serves. ``slots`` is asked afresh each time: cards come and go."""

    def __init__(self, slots: Callable[[], Sequence[CardSlot]], trust: TrustList) -> None:
        self._slots = slots
        self.trust = trust
        # One card conversation at a time: a PIN check and a signature must not interleave.
        self._card_lock = threading.Lock()

    def handle(self, request: dict, origin: str | None) -> dict:
        """Answer one request (``MakeSignature``, ``GetUserCert``, ``CheckEnvir``, ``DecryptData``,
        ``changeUserPINCode``) for ``origin``.

        ``origin`` is the asking web site, or ``None`` when no site asks: a program on this computer, the
        component's own pages (its self-test), or a browser request no other site made (the person at
        the address bar). The HTTP face never passes ``None`` for a request another site made without an
        Origin (a plain ``<img>``): it names the site ``"null"``, never trusted. A site must be on the
        trust list even to read the certificates: they name the person.
        """
        func = request.get("func")
        reply = protocol.reply_func(func)
        if origin is not None and origin not in self.trust:
            return protocol.failure(reply, protocol.SITE_NOT_TRUSTED, site=origin)
        try:
            if func == "MakeSignature":
                return self.make_signature(request, allow_sha1=origin is not None and self.trust.allows_sha1(origin))
            if func == "GetUserCert":
                return self.pkcs11info(with_cert=True)
            if func == "CheckEnvir":
                return self.pkcs11info(with_cert=False)
            if func == "DecryptData":
                return self.decrypt_data(request)
            if func == "changeUserPINCode":
                return self.change_user_pin(request)
        except _Refusal as refusal:
            return refusal.answer
        return protocol.failure(reply, protocol.UNSUPPORTED_FUNC, protocol.CKR_ARGUMENTS_BAD)

    # -- pkcs11info ---------------------------------------------------------------------------------

    def pkcs11info(self, *, with_cert: bool) -> dict:
        """Every slot with its token (null when empty); no reader at all is ``slots: []``, as pages expect."""
        slots = []
        with self._card_lock:
            try:
                present = self._slots()
            except CardError as exc:  # no PC/SC service: say so, with the empty list pages look at
                return {**protocol.card_failure("pkcs11info", exc), "slots": []}
            for slot in present:
                slots.append({"slotDescription": slot.name, "token": self._token(slot, with_cert)})
        return protocol.success("pkcs11info", slots=slots)

    def image_info(self, origin: str | None) -> dict:
        """What /p11Image.bmp carries for ``origin``: pkcs11info without certificates, for trusted sites only.

        The real component draws it for any page; but the card numbers in it identify the person to
        every site they visit. So, as the popup does, an untrusted site gets "not trusted", the code
        pages already answer by offering addDomain.
        """
        if origin is not None and origin not in self.trust:
            return protocol.failure("pkcs11info", protocol.SITE_NOT_TRUSTED)
        return self.pkcs11info(with_cert=False)

    # -- MakeSignature ------------------------------------------------------------------------------

    def make_signature(self, request: dict, *, allow_sha1: bool = False) -> dict:
        """Sign as ``MakeSignature`` asks (the caller has checked who asks, and whether SHA-1 is allowed)."""
        try:
            pin = self._pin(request, "pin", "sign")
            try:
                sign_request = signer.SignRequest.from_make_signature(request, allow_sha1=allow_sha1)
            except signer.Sha1NotAllowed as exc:
                return protocol.failure(
                    "sign", protocol.BAD_PARAMETER, protocol.CKR_ARGUMENTS_BAD,
                    "此網站未獲允許使用 SHA-1 雜湊簽章（可被偽造），可在元件設定頁允許。"
                    f"{exc}; the person can allow it on the component's page {SETTINGS_PATH}.",
                )
            except signer.SignRequestError as exc:
                return protocol.failure("sign", protocol.BAD_PARAMETER, protocol.CKR_ARGUMENTS_BAD,
                                        f"{protocol.MESSAGES[protocol.BAD_PARAMETER]}: {exc}")
            with self._card_lock:
                slot = self._pick(request.get("slotDescription"), "sign")
                with slot.open() as card:
                    certificate = card.signing_certificate()
                    now = datetime.now(timezone.utc)
                    if certificate.not_valid_after_utc <= now:
                        return protocol.failure("sign", protocol.CARD_EXPIRED)
                    if certificate.not_valid_before_utc > now:
                        return protocol.failure("sign", protocol.CERT_NOT_YET_VALID)
                    result = signer.sign(card, pin, sign_request)
        except _Refusal as refusal:
            return refusal.answer
        except CardError as exc:
            return protocol.card_failure("sign", exc)
        return protocol.sign_response(result.signature, result.certificate, result.card_number)

    # -- DecryptData --------------------------------------------------------------------------------

    _DECRYPT_REQUEST_ERRORS = {
        "missing": protocol.NO_CIPHER,
        "base64": protocol.BASE64_ERROR,
        "type": protocol.DECRYPT_TYPE_ERROR,
    }
    _ENVELOPE_ERRORS = {
        "der": protocol.DECRYPT_DER_ERROR,
        "type": protocol.DECRYPT_TYPE_ERROR,
        "recipient": protocol.DECRYPT_FAILED,
    }

    def decrypt_data(self, request: dict) -> dict:
        """Decrypt as ``DecryptData`` asks, with the card's encryption key; the answer's ``plain`` is the result.

        An expired card still decrypts: what was sent to it while it was valid must stay readable.
        """
        try:
            pin = self._pin(request, "pin", "decrypt")
            decrypt_request = decrypter.DecryptRequest.from_decrypt_data(request)
            with self._card_lock:
                slot = self._pick(request.get("slotDescription"), "decrypt")
                with slot.open() as card:
                    plain = decrypter.decrypt(card, pin, decrypt_request)
            return protocol.success("decrypt", plain=decrypt_request.plain_text(plain))
        except _Refusal as refusal:
            return refusal.answer
        except decrypter.DecryptRequestError as exc:
            code = self._DECRYPT_REQUEST_ERRORS[exc.kind]
            return protocol.failure("decrypt", code, 0, f"{protocol.MESSAGES[code]}: {exc}")
        except decrypter.EnvelopeError as exc:
            code = self._ENVELOPE_ERRORS[exc.kind]
            return protocol.failure("decrypt", code, 0, f"{protocol.MESSAGES[code]}: {exc}")
        except CardError as exc:
            return protocol.card_failure("decrypt", exc)

    # -- changeUserPINCode --------------------------------------------------------------------------

    def change_user_pin(self, request: dict) -> dict:
        """Change the PIN: ``currentPIN`` (the old one) to ``newpin``, both 6 to 8 digits."""
        func = "changeUserPINCode"
        try:
            old = self._pin(request, "currentPIN", func)
            new = self._pin(request, "newpin", func)
            with self._card_lock:
                slot = self._pick(request.get("slotDescription"), func)
                with slot.open() as card:
                    card.change_pin(old, new)
        except _Refusal as refusal:
            return refusal.answer
        except CardError as exc:
            return protocol.card_failure(func, exc)
        return protocol.success(func)

    # -- the parts ----------------------------------------------------------------------------------

    @staticmethod
    def _pin(request: dict, field: str, func: str) -> str:
        """The PIN in ``field``, URL-decoded once (pages encodeURIComponent it); refuses before any card
        is touched when it is missing or not 6 to 8 digits, so no try is spent."""
        value = request.get(field)
        if value is None or value == "":
            raise _Refusal(protocol.failure(func, protocol.NO_PIN))
        pin = unquote(value) if isinstance(value, str) else ""
        if not PIN_FORMAT.match(pin):
            raise _Refusal(protocol.failure(func, protocol.LOGIN_FAILED, protocol.CKR_PIN_LEN_RANGE,
                                            "PIN碼須為6至8位數字 The PIN is 6 to 8 digits"))
        return pin

    def _pick(self, description: object, func: str) -> CardSlot:
        """The slot named by ``slotDescription`` (a reader name; some pages send the number 0), else
        the first with a card. Called with the card lock held."""
        slots = list(self._slots())
        if not slots:
            raise _Refusal(protocol.failure(func, protocol.NO_READER))
        present = [slot for slot in slots if slot.has_card()]
        if isinstance(description, str) and description:
            chosen = next((slot for slot in present if slot.name == description), None)
        elif isinstance(description, int) and not isinstance(description, bool) and 0 <= description < len(present):
            chosen = present[description]
        else:
            chosen = present[0] if present else None
        if chosen is None:
            raise _Refusal(protocol.failure(func, protocol.NO_CARD, protocol.CKR_TOKEN_NOT_PRESENT))
        return chosen

    def _token(self, slot: CardSlot, with_cert: bool) -> dict | None:
        if not slot.has_card():
            return None
        try:
            with slot.open() as card:
                token: dict = {"serialNumber": card.card_number()}
                if with_cert:
                    token["certs"] = protocol.certificate_entries(
                        card.signing_certificate(), card.encryption_certificate(), card.ca_certificates()
                    )
        except CardError:
            return None
        return token
