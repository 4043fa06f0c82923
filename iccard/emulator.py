"""A PIV card in Python, holding one demo card, and an in-process reader to put it in.

:class:`PivCardEmulator` answers command APDUs as a PIV card (SP 800-73-4) does: enough for our own
:class:`~iccard.piv.PivSession` and for OpenSC's PIV driver, which is how we know it is a PIV card and not
just a mirror of our client. The PIN retry counter lives in a JSON file, so a blocked card stays blocked
across restarts, as a real one does. :mod:`iccard.vpcd` puts the same emulator behind pcscd.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import tlv
from .apdu import (
    CLA_CHAINING,
    INS_GET_RESPONSE,
    INS_SELECT,
    MAX_SHORT_NE,
    SW_AUTH_METHOD_BLOCKED,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_FILE_NOT_FOUND,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_LAST_COMMAND_EXPECTED,
    SW_OK,
    SW_REFERENCE_NOT_FOUND,
    SW_SECURITY_STATUS_NOT_SATISFIED,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    CommandApdu,
)
from .demo_pki import DemoCard, DemoPKI
from .errors import CardError, CardRemoved, NoCard
from .piv import (
    CERTIFICATE_OBJECTS,
    INS_GENERAL_AUTHENTICATE,
    INS_GET_DATA,
    INS_VERIFY,
    PIN_LENGTH,
    PIN_PAD,
    PIN_REFERENCE,
    PIV_AID,
    PIV_PIX,
    PIV_RID,
    RSA_2048_BYTES,
    TAG_APPLICATION_PROPERTY_TEMPLATE,
    TAG_CERT_INFO,
    TAG_CERTIFICATE,
    TAG_CHALLENGE,
    TAG_DISCOVERY,
    TAG_DYNAMIC_AUTHENTICATION,
    TAG_ERROR_DETECTION,
    TAG_EXPIRATION,
    TAG_FASC_N,
    TAG_GUID,
    TAG_ISSUER_SIGNATURE,
    TAG_OBJECT_DATA,
    TAG_RESPONSE,
    TAG_TAG_LIST,
    Algorithm,
    ObjectId,
    Slot,
)

MAX_PIN_TRIES = 3
MAX_CHAINED_DATA = 65535  # what one extended APDU could carry; a longer chain is a confused host


def _atr(historical: bytes) -> bytes:
    """An ATR announcing T=1 with ``historical`` bytes, its check byte computed."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    check = 0
    for byte in body:
        check ^= byte
    return b"\x3b" + body + bytes([check])


# Historical bytes in ISO 7816-4 compact-TLV (category 80): application identifier (tag F, 11 bytes) =
# the PIV AID. OpenSC's PIV driver does not rely on it (it SELECTs), but it tells a human what this is.
ATR = _atr(b"\x80\xfb" + PIV_AID)

# The non-federal FASC-N that SP 800-73-4 prescribes for cards outside the US government (agency,
# system and credential codes all 9999...): OpenSC only needs a well-formed one.
NON_FEDERAL_FASC_N = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")

PIN_USAGE_POLICY = b"\x40\x00"  # the PIV PIN is the only PIN; no global PIN
KEY_SLOTS = (Slot.AUTHENTICATION, Slot.SIGNATURE)  # the one key, reachable where OpenSC looks for it


def _sw(sw: int, data: bytes = b"") -> bytes:
    return data + sw.to_bytes(2, "big")


class PivCardEmulator:
    """One PIV card: a card number, an RSA-2048 key with its certificate in slots 9A and 9C, a PIN.

    ``state_dir`` keeps ``<card_number>.json`` with the PIN retry counter. The PIN is kept only as a salted
    hash, as a card keeps it out of reach.
    """

    def __init__(
        self,
        *,
        card_number: str,
        key: rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        pin: str,
        state_dir: str | os.PathLike[str],
    ) -> None:
        if key.key_size != RSA_2048_BYTES * 8:
            raise ValueError("the emulator holds an RSA-2048 key")
        self.card_number = card_number
        self.certificate = certificate
        self.atr = ATR
        self._numbers = key.private_numbers()
        self._pin_salt = secrets.token_bytes(16)
        self._pin_hash = self._hash_pin(pin.encode("ascii"))
        self._state_file = Path(state_dir) / f"{card_number}.json"
        self._lock = threading.RLock()
        self._objects = self._build_objects(certificate)
        self._tries_left = self._load_tries()
        self._reset_session()

    @classmethod
    def from_demo(cls, pki: DemoPKI, card: DemoCard, state_dir: str | os.PathLike[str]) -> PivCardEmulator:
        """The emulator of demo card ``card`` of ``pki``."""
        return cls(
            card_number=card.card_number,
            key=pki.card_key(card),
            certificate=pki.card_certificate(card),
            pin=card.pin,
            state_dir=state_dir,
        )

    # -- power ------------------------------------------------------------------------------------------

    def power_on(self) -> None:
        """Power the card up: a fresh session, nothing selected, no PIN verified."""
        with self._lock:
            self._reset_session()

    def power_off(self) -> None:
        """Power the card down; everything but the persistent retry counter is forgotten."""
        with self._lock:
            self._reset_session()

    def reset(self) -> None:
        """A warm reset: the same as powering off and on."""
        with self._lock:
            self._reset_session()

    def _reset_session(self) -> None:
        self._selected = False
        self._pin_verified = False
        # PIV's "PIN always" for the signature key: one signature per VERIFY.
        self._signature_allowed = False
        self._chain: tuple[tuple[int, int, int], bytearray] | None = None
        self._pending = b""

    # -- the retry counter ------------------------------------------------------------------------------

    @property
    def pin_tries_left(self) -> int:
        return self._tries_left

    def reset_pin_counter(self) -> None:
        """Unblock the PIN and give it all its tries back (the demo tooling's PUK)."""
        with self._lock:
            self._store_tries(MAX_PIN_TRIES)

    def _load_tries(self) -> int:
        if not self._state_file.exists():
            return MAX_PIN_TRIES
        tries = json.loads(self._state_file.read_text()).get("pin_tries_left")
        if not isinstance(tries, int) or not 0 <= tries <= MAX_PIN_TRIES:
            raise ValueError(f"{self._state_file} holds no valid PIN retry counter")
        return tries

    def _store_tries(self, tries: int) -> None:
        self._tries_left = tries
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed, so a crash never leaves a half-written (unreadable) counter.
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"pin_tries_left": tries}) + "\n")
        os.replace(temporary, self._state_file)

    def _hash_pin(self, pin: bytes) -> bytes:
        return hashlib.sha256(self._pin_salt + pin).digest()

    # -- the card's data --------------------------------------------------------------------------------

    def _build_objects(self, certificate: x509.Certificate) -> dict[int, bytes]:
        """Every data object as GET DATA returns it, by tag."""
        der = certificate.public_bytes(serialization.Encoding.DER)
        expiry = certificate.not_valid_after_utc.strftime("%Y%m%d").encode("ascii")
        chuid = (
            tlv.tlv(TAG_FASC_N, NON_FEDERAL_FASC_N)
            + tlv.tlv(TAG_GUID, self.card_number.encode("ascii"))
            + tlv.tlv(TAG_EXPIRATION, expiry)
            + tlv.tlv(TAG_ISSUER_SIGNATURE)
            + tlv.tlv(TAG_ERROR_DETECTION)
        )
        # Card Capability Container: card identifier (GSC-RID, manufacturer, card type, 14-byte id),
        # versions 2.1, data model 10 (PIV); the rest empty, as on most PIV cards.
        card_id = hashlib.sha256(self.card_number.encode("ascii")).digest()[:14]
        card_identifier = bytes.fromhex("A000000116") + b"\xff\x01" + card_id
        ccc = (
            tlv.tlv(0xF0, card_identifier)
            + tlv.tlv(0xF1, b"\x21")
            + tlv.tlv(0xF2, b"\x21")
            + tlv.tlv(0xF3)
            + tlv.tlv(0xF4, b"\x00")
            + tlv.tlv(0xF5, b"\x10")
            + tlv.tlv(0xF6)
            + tlv.tlv(0xF7)
            + tlv.tlv(0xFA)
            + tlv.tlv(0xFB)
            + tlv.tlv(0xFC)
            + tlv.tlv(0xFD)
            + tlv.tlv(TAG_ERROR_DETECTION)
        )
        discovery = tlv.tlv(0x4F, PIV_AID) + tlv.tlv(0x5F2F, PIN_USAGE_POLICY)
        key_history = tlv.tlv(0xC1, b"\x00") + tlv.tlv(0xC2, b"\x00") + tlv.tlv(TAG_ERROR_DETECTION)
        certificate_object = (
            tlv.tlv(TAG_CERTIFICATE, der) + tlv.tlv(TAG_CERT_INFO, b"\x00") + tlv.tlv(TAG_ERROR_DETECTION)
        )
        objects = {
            ObjectId.CHUID: tlv.tlv(TAG_OBJECT_DATA, chuid),
            ObjectId.CCC: tlv.tlv(TAG_OBJECT_DATA, ccc),
            ObjectId.DISCOVERY: tlv.tlv(TAG_DISCOVERY, discovery),
            ObjectId.KEY_HISTORY: tlv.tlv(TAG_OBJECT_DATA, key_history),
        }
        for slot in KEY_SLOTS:
            objects[CERTIFICATE_OBJECTS[slot]] = tlv.tlv(TAG_OBJECT_DATA, certificate_object)
        return {int(tag): value for tag, value in objects.items()}

    def _application_property_template(self) -> bytes:
        algorithms = tlv.tlv(0x80, bytes([Algorithm.RSA_2048])) + tlv.tlv(0x06, b"\x00")
        return tlv.tlv(
            TAG_APPLICATION_PROPERTY_TEMPLATE,
            tlv.tlv(0x4F, PIV_PIX)
            + tlv.tlv(0x79, tlv.tlv(0x4F, PIV_RID))  # coexisting tag allocation authority: NIST
            + tlv.tlv(0x50, b"MoCert PIV emulator")
            + tlv.tlv(0xAC, algorithms),
        )

    # -- APDUs ------------------------------------------------------------------------------------------

    def process(self, apdu: bytes) -> bytes:
        """Answer one command APDU; returns the response APDU (data, then the two status bytes)."""
        with self._lock:
            try:
                command = CommandApdu.decode(bytes(apdu))
            except ValueError:
                return _sw(SW_WRONG_LENGTH)
            if command.cla & ~CLA_CHAINING != 0x00:
                return _sw(SW_CLA_NOT_SUPPORTED)
            if command.ins == INS_GET_RESPONSE:
                return self._get_response(command)
            self._pending = b""  # a new command forfeits what was not fetched of the last answer
            header = (command.ins, command.p1, command.p2)
            if command.cla & CLA_CHAINING:
                if self._chain is None or self._chain[0] != header:
                    self._chain = (header, bytearray())
                self._chain[1].extend(command.data)
                if len(self._chain[1]) > MAX_CHAINED_DATA:
                    self._chain = None
                    return _sw(SW_WRONG_LENGTH)
                return _sw(SW_OK)
            data = command.data
            if self._chain is not None:
                chained_header, collected = self._chain
                self._chain = None
                if chained_header != header:
                    return _sw(SW_LAST_COMMAND_EXPECTED)
                data = bytes(collected) + data
            response, sw = self._dispatch(command, data)
            if sw != SW_OK:
                return _sw(sw)
            return self._answer(response, command.ne)

    def _answer(self, response: bytes, ne: int | None) -> bytes:
        """Send what fits in ``ne`` bytes; keep the rest for GET RESPONSE and say so with 61xx."""
        limit = ne if ne is not None else MAX_SHORT_NE
        first, self._pending = response[:limit], response[limit:]
        if self._pending:
            return _sw(0x6100 | (len(self._pending) if len(self._pending) < 256 else 0), first)
        return _sw(SW_OK, first)

    def _get_response(self, command: CommandApdu) -> bytes:
        if not self._pending or command.p1 or command.p2:
            return _sw(SW_CONDITIONS_NOT_SATISFIED)
        return self._answer(self._pending, command.ne)

    def _dispatch(self, command: CommandApdu, data: bytes) -> tuple[bytes, int]:
        if command.ins == INS_SELECT:
            return self._select(command, data)
        if not self._selected:
            return b"", SW_INS_NOT_SUPPORTED  # no application: the card's bare OS knows nothing more
        handlers = {
            INS_GET_DATA: self._get_data,
            INS_VERIFY: self._verify,
            INS_GENERAL_AUTHENTICATE: self._general_authenticate,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            return b"", SW_INS_NOT_SUPPORTED
        return handler(command, data)

    def _select(self, command: CommandApdu, aid: bytes) -> tuple[bytes, int]:
        # PIV allows selecting by a right-truncated AID, down to NIST's RID.
        if command.p1 != 0x04 or len(aid) < len(PIV_RID) or not PIV_AID.startswith(aid):
            return b"", SW_FILE_NOT_FOUND  # and whatever was selected stays selected
        self._selected = True
        return self._application_property_template(), SW_OK

    def _get_data(self, command: CommandApdu, data: bytes) -> tuple[bytes, int]:
        if (command.p1, command.p2) != (0x3F, 0xFF):
            return b"", SW_INCORRECT_P1P2
        try:
            tag = int.from_bytes(tlv.unwrap(data, TAG_TAG_LIST), "big")
        except tlv.TlvError:
            return b"", SW_WRONG_DATA
        found = self._objects.get(tag)
        if found is None:
            return b"", SW_FILE_NOT_FOUND
        return found, SW_OK

    def _verify(self, command: CommandApdu, data: bytes) -> tuple[bytes, int]:
        if command.p2 != PIN_REFERENCE:
            return b"", SW_REFERENCE_NOT_FOUND
        if command.p1 == 0xFF:  # "reset the security status": log out
            if data:
                return b"", SW_WRONG_DATA
            self._pin_verified = self._signature_allowed = False
            return b"", SW_OK
        if command.p1 != 0x00:
            return b"", SW_INCORRECT_P1P2
        if not data:  # the status query: verified, or how many tries remain
            if self._tries_left == 0:
                return b"", SW_AUTH_METHOD_BLOCKED
            return b"", SW_OK if self._pin_verified else 0x63C0 | self._tries_left
        if self._tries_left == 0:
            return b"", SW_AUTH_METHOD_BLOCKED
        if len(data) != PIN_LENGTH:
            return b"", SW_WRONG_DATA
        # Spend the try before comparing, as cards do: cutting the power mid-check must not save it.
        self._pin_verified = self._signature_allowed = False
        self._store_tries(self._tries_left - 1)
        if not hmac.compare_digest(self._hash_pin(data.rstrip(bytes([PIN_PAD]))), self._pin_hash):
            return b"", 0x63C0 | self._tries_left
        self._store_tries(MAX_PIN_TRIES)
        self._pin_verified = self._signature_allowed = True
        return b"", SW_OK

    def _general_authenticate(self, command: CommandApdu, data: bytes) -> tuple[bytes, int]:
        if command.p2 not in KEY_SLOTS:
            return b"", SW_REFERENCE_NOT_FOUND
        if command.p1 != Algorithm.RSA_2048:
            return b"", SW_INCORRECT_P1P2
        allowed = self._signature_allowed if command.p2 == Slot.SIGNATURE else self._pin_verified
        if not allowed:
            return b"", SW_SECURITY_STATUS_NOT_SATISFIED
        try:
            template = tlv.parse_dict(tlv.unwrap(data, TAG_DYNAMIC_AUTHENTICATION))
        except tlv.TlvError:
            return b"", SW_WRONG_DATA
        challenge = template.get(TAG_CHALLENGE)
        if TAG_RESPONSE not in template or challenge is None or len(challenge) != RSA_2048_BYTES:
            return b"", SW_WRONG_DATA
        m = int.from_bytes(challenge, "big")
        n = self._numbers.public_numbers.n
        if m >= n:
            return b"", SW_WRONG_DATA
        if command.p2 == Slot.SIGNATURE:
            self._signature_allowed = False
        signature = pow(m, self._numbers.d, n).to_bytes(RSA_2048_BYTES, "big")
        return tlv.tlv(TAG_DYNAMIC_AUTHENTICATION, tlv.tlv(TAG_RESPONSE, signature)), SW_OK


# -- in-process reader ----------------------------------------------------------------------------------


class InProcessReader:
    """A reader with an emulated card in it (or none): :class:`~iccard.transport.Reader` without PC/SC.

    :meth:`remove` pulls the card out: every connection made before then raises
    :class:`~iccard.errors.CardRemoved`, as over a real reader.
    """

    def __init__(self, emulator: PivCardEmulator | None = None, name: str = "MoCert in-process reader") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._emulator: PivCardEmulator | None = None
        self._insertion = 0  # which insertion a connection belongs to
        if emulator is not None:
            self.insert(emulator)

    @property
    def name(self) -> str:
        return self._name

    @property
    def emulator(self) -> PivCardEmulator | None:
        return self._emulator

    def has_card(self) -> bool:
        return self._emulator is not None

    def insert(self, emulator: PivCardEmulator) -> None:
        """Put ``emulator`` in the reader, powered up. Raises :class:`~iccard.errors.CardError` if full."""
        with self._lock:
            if self._emulator is not None:
                raise CardError("the reader already holds a card")
            emulator.power_on()
            self._emulator = emulator
            self._insertion += 1

    def remove(self) -> PivCardEmulator | None:
        """Pull the card out; returns it (None if the reader was empty)."""
        with self._lock:
            emulator, self._emulator = self._emulator, None
            if emulator is not None:
                emulator.power_off()
            return emulator

    def connect(self) -> EmulatedConnection:
        """A connection to the card in the reader. Raises :class:`~iccard.errors.NoCard` when empty."""
        with self._lock:
            if self._emulator is None:
                raise NoCard(f"no card in {self._name}")
            return EmulatedConnection(self, self._insertion)

    def _transmit(self, insertion: int, apdu: bytes) -> bytes:
        with self._lock:
            if self._emulator is None or insertion != self._insertion:
                raise CardRemoved(f"the card was removed from {self._name}")
            return self._emulator.process(apdu)

    def _reset(self, insertion: int) -> None:
        with self._lock:
            if self._emulator is not None and insertion == self._insertion:
                self._emulator.reset()


class EmulatedConnection:
    """A connection to an emulated card (:class:`~iccard.transport.CardConnection`).

    Closing it resets the card, as :mod:`iccard.pcsc` does, so a verified PIN does not outlive it.
    """

    def __init__(self, reader: InProcessReader, insertion: int) -> None:
        self._reader = reader
        self._insertion = insertion
        self._open = True

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send ``apdu``; returns ``(data, status word)``. Raises :class:`~iccard.errors.CardRemoved`."""
        if not self._open:
            raise CardError("the connection is closed")
        response = self._reader._transmit(self._insertion, apdu)
        return response[:-2], int.from_bytes(response[-2:], "big")

    def close(self) -> None:
        if self._open:
            self._open = False
            self._reader._reset(self._insertion)
