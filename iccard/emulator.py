"""A PIV card in Python, holding one demo card, and an in-process reader to put it in.

:class:`PivCardEmulator` answers command APDUs as a PIV card (SP 800-73-4) does: enough for our own
:class:`~iccard.piv.PivSession` and for OpenSC's PIV driver, which is how we know it is a PIV card and not
just a mirror of our client. It is laid out as a citizen card is: a signing and an encryption key with
their certificates, and the issuing CA's certificate. The PIN retry counter (and the PIN, once changed)
lives in a JSON file, so a blocked card stays blocked and a changed PIN stays changed across restarts, as
on a real card. :mod:`iccard.vpcd` puts the same emulator behind pcscd.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Sequence
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
    INS_CHANGE_REFERENCE_DATA,
    INS_GENERAL_AUTHENTICATE,
    INS_GET_DATA,
    INS_VERIFY,
    PIN_LENGTH,
    PIN_PAD,
    PIN_REFERENCE,
    PIV_AID,
    PIV_PIX,
    PIV_RID,
    RETIRED_CERTIFICATE_OBJECTS,
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
    TAG_KEYS_WITH_OFF_CARD_CERTS,
    TAG_KEYS_WITH_ON_CARD_CERTS,
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


def _sw(sw: int, data: bytes = b"") -> bytes:
    return data + sw.to_bytes(2, "big")


def _check_pair(key: rsa.RSAPrivateKey, certificate: x509.Certificate | None, role: str) -> None:
    if key.key_size != RSA_2048_BYTES * 8:
        raise ValueError(f"the emulator holds RSA-2048 keys; the {role} key is RSA-{key.key_size}")
    if certificate is not None and certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError(f"the {role} certificate is not the {role} key's")


def _certificate_object(certificate: x509.Certificate) -> bytes:
    """A certificate object as GET DATA returns it: the DER certificate, uncompressed."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return tlv.tlv(
        TAG_OBJECT_DATA,
        tlv.tlv(TAG_CERTIFICATE, der) + tlv.tlv(TAG_CERT_INFO, b"\x00") + tlv.tlv(TAG_ERROR_DETECTION),
    )


def _new_pin(block: bytes) -> bytes | None:
    """The digits of a PIN block as PIV wants a new PIN: 6 to 8 ASCII digits, FF-padded to 8 (else None)."""
    digits = block.rstrip(bytes([PIN_PAD]))
    if len(block) != PIN_LENGTH or not 6 <= len(digits) <= PIN_LENGTH or not digits.isdigit():  # ASCII digits
        return None
    return digits


class PivCardEmulator:
    """One PIV card, shaped like a citizen card: a card number, a PIN, and

    - the signing key (RSA-2048) with its certificate in slots 9A and 9C;
    - optionally the encryption key (RSA-2048) with its certificate in slot 9D, key management, which
      decrypts;
    - optionally CA certificates (the issuing CA's) in the retired key-management certificate objects,
      from the first on, with no key behind them: where SP 800-73-4 has room for further certificates, and
      the Key History object says how many there are, so readers such as OpenSC look there.

    ``state_dir`` keeps ``<card_number>.json`` with the PIN retry counter, and the PIN once it has been
    changed on the card. The PIN is kept only as a salted hash, as a card keeps it out of reach.
    """

    def __init__(
        self,
        *,
        card_number: str,
        key: rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        pin: str,
        state_dir: str | os.PathLike[str],
        encryption_key: rsa.RSAPrivateKey | None = None,
        encryption_certificate: x509.Certificate | None = None,
        ca_certificates: Sequence[x509.Certificate] = (),
    ) -> None:
        if (encryption_key is None) != (encryption_certificate is None):
            raise ValueError("an encryption key comes with its certificate, and the other way round")
        if len(ca_certificates) > len(RETIRED_CERTIFICATE_OBJECTS):
            raise ValueError(f"a PIV card has room for {len(RETIRED_CERTIFICATE_OBJECTS)} further certificates")
        _check_pair(key, certificate, "signing")
        self.card_number = card_number
        self.certificate = certificate
        self.encryption_certificate = encryption_certificate
        self.ca_certificates = tuple(ca_certificates)
        self.atr = ATR
        signing = key.private_numbers()
        self._keys = {Slot.AUTHENTICATION: signing, Slot.SIGNATURE: signing}
        if encryption_key is not None:
            _check_pair(encryption_key, encryption_certificate, "encryption")
            self._keys[Slot.KEY_MANAGEMENT] = encryption_key.private_numbers()
        self._pin_salt = secrets.token_bytes(16)
        self._pin_hash = self._hash_pin(pin.encode("ascii"))
        self._pin_changed = False  # the PIN in the state file, once changed, outranks ``pin``
        self._state_file = Path(state_dir) / f"{card_number}.json"
        self._lock = threading.RLock()
        self._objects = self._build_objects()
        self._tries_left = self._load_state()
        self._reset_session()

    @classmethod
    def from_demo(cls, pki: DemoPKI, card: DemoCard, state_dir: str | os.PathLike[str]) -> PivCardEmulator:
        """The emulator of demo card ``card`` of ``pki``: both its keys and certificates, and the issuing
        CA's certificate, as a citizen card carries them."""
        return cls(
            card_number=card.card_number,
            key=pki.card_key(card),
            certificate=pki.card_certificate(card),
            pin=card.pin,
            state_dir=state_dir,
            encryption_key=pki.card_encryption_key(card),
            encryption_certificate=pki.card_encryption_certificate(card),
            ca_certificates=[pki.issuer_certificate],
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

    # -- the retry counter and the PIN ----------------------------------------------------------------

    @property
    def pin_tries_left(self) -> int:
        return self._tries_left

    def reset_pin_counter(self) -> None:
        """Unblock the PIN and give it all its tries back (the demo tooling's PUK); the PIN stays as it is."""
        with self._lock:
            self._store_state(MAX_PIN_TRIES)

    def _load_state(self) -> int:
        """The retry counter from the state file (all tries if there is none); takes its PIN, if it has one.

        A file from before PINs could change holds only the counter: the card then keeps ``pin``.
        """
        if not self._state_file.exists():
            return MAX_PIN_TRIES
        state = json.loads(self._state_file.read_text())
        tries = state.get("pin_tries_left")
        if not isinstance(tries, int) or not 0 <= tries <= MAX_PIN_TRIES:
            raise ValueError(f"{self._state_file} holds no valid PIN retry counter")
        if "pin" in state:
            try:
                salt, digest = bytes.fromhex(state["pin"]["salt"]), bytes.fromhex(state["pin"]["sha256"])
            except (TypeError, KeyError, ValueError) as exc:
                raise ValueError(f"{self._state_file} holds no valid PIN") from exc
            if len(salt) != 16 or len(digest) != 32:
                raise ValueError(f"{self._state_file} holds no valid PIN")
            self._pin_salt, self._pin_hash, self._pin_changed = salt, digest, True
        return tries

    def _store_state(self, tries: int) -> None:
        self._tries_left = tries
        state: dict = {"pin_tries_left": tries}
        if self._pin_changed:
            state["pin"] = {"salt": self._pin_salt.hex(), "sha256": self._pin_hash.hex()}
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed, so a crash never leaves a half-written (unreadable) state; only for its
        # owner, as it may hold the PIN's hash.
        temporary = self._state_file.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # also when a leftover temporary file had other permissions
        with os.fdopen(descriptor, "w") as file:
            file.write(json.dumps(state) + "\n")
        os.replace(temporary, self._state_file)

    def _hash_pin(self, pin: bytes) -> bytes:
        # A fast salted hash: a PIN has few enough values that no hash protects it from whoever reads the
        # state file, and that person can read the demo card's key files beside it anyway. The salt keeps
        # two cards with the same PIN from showing it.
        return hashlib.sha256(self._pin_salt + pin).digest()

    def _pin_matches(self, block: bytes) -> bool:
        return hmac.compare_digest(self._hash_pin(block.rstrip(bytes([PIN_PAD]))), self._pin_hash)

    # -- the card's data --------------------------------------------------------------------------------

    def _build_objects(self) -> dict[int, bytes]:
        """Every data object as GET DATA returns it, by tag."""
        expiry = self.certificate.not_valid_after_utc.strftime("%Y%m%d").encode("ascii")
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
        # Key History: how many retired key-management keys have their certificate on the card (the CA
        # certificates, in the first retired objects), and none elsewhere. Readers look in the retired objects
        # only as far as this count says.
        key_history = (
            tlv.tlv(TAG_KEYS_WITH_ON_CARD_CERTS, bytes([len(self.ca_certificates)]))
            + tlv.tlv(TAG_KEYS_WITH_OFF_CARD_CERTS, b"\x00")
            + tlv.tlv(TAG_ERROR_DETECTION)
        )
        objects = {
            ObjectId.CHUID: tlv.tlv(TAG_OBJECT_DATA, chuid),
            ObjectId.CCC: tlv.tlv(TAG_OBJECT_DATA, ccc),
            ObjectId.DISCOVERY: tlv.tlv(TAG_DISCOVERY, discovery),
            ObjectId.KEY_HISTORY: tlv.tlv(TAG_OBJECT_DATA, key_history),
        }
        for slot in (Slot.AUTHENTICATION, Slot.SIGNATURE):
            objects[CERTIFICATE_OBJECTS[slot]] = _certificate_object(self.certificate)
        if self.encryption_certificate is not None:
            objects[CERTIFICATE_OBJECTS[Slot.KEY_MANAGEMENT]] = _certificate_object(self.encryption_certificate)
        for object_id, ca_certificate in zip(RETIRED_CERTIFICATE_OBJECTS, self.ca_certificates):
            objects[object_id] = _certificate_object(ca_certificate)
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
            INS_CHANGE_REFERENCE_DATA: self._change_reference_data,
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

    def _change_reference_data(self, command: CommandApdu, data: bytes) -> tuple[bytes, int]:
        """CHANGE REFERENCE DATA of the PIN: the current PIN, then the new one, each FF-padded to 8 bytes."""
        if command.p2 != PIN_REFERENCE:
            return b"", SW_REFERENCE_NOT_FOUND  # the PUK (81) cannot be changed here, as it is never used
        if command.p1 != 0x00:
            return b"", SW_INCORRECT_P1P2
        if self._tries_left == 0:
            return b"", SW_AUTH_METHOD_BLOCKED
        if len(data) != 2 * PIN_LENGTH:
            return b"", SW_WRONG_DATA
        old, new = data[:PIN_LENGTH], _new_pin(data[PIN_LENGTH:])
        if new is None:  # refused before the old PIN is looked at, so a malformed new PIN costs no try
            return b"", SW_WRONG_DATA
        self._pin_verified = self._signature_allowed = False
        self._store_state(self._tries_left - 1)  # spent before comparing, as VERIFY does
        if not self._pin_matches(old):
            return b"", 0x63C0 | self._tries_left
        self._pin_salt = secrets.token_bytes(16)
        self._pin_hash = self._hash_pin(new)
        self._pin_changed = True
        self._store_state(MAX_PIN_TRIES)
        return b"", SW_OK  # and the PIN is not verified by this: a VERIFY of the new one is the way in

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
        self._store_state(self._tries_left - 1)
        if not self._pin_matches(data):
            return b"", 0x63C0 | self._tries_left
        self._store_state(MAX_PIN_TRIES)
        self._pin_verified = self._signature_allowed = True
        return b"", SW_OK

    def _general_authenticate(self, command: CommandApdu, data: bytes) -> tuple[bytes, int]:
        key = self._keys.get(command.p2)  # none for the retired references: the CA certificates have no key
        if key is None:
            return b"", SW_REFERENCE_NOT_FOUND
        if command.p1 != Algorithm.RSA_2048:
            return b"", SW_INCORRECT_P1P2
        # PIV's PIN policy: 9C wants the PIN just before each use ("PIN always"); 9A and 9D once a session.
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
        n = key.public_numbers.n
        if m >= n:
            return b"", SW_WRONG_DATA
        if command.p2 == Slot.SIGNATURE:
            self._signature_allowed = False
        # The raw private operation, for a signature (a padded block) as for a decryption (a ciphertext):
        # a PIV card leaves padding, and its removal, to the host.
        result = pow(m, key.d, n).to_bytes(RSA_2048_BYTES, "big")
        return tlv.tlv(TAG_DYNAMIC_AUTHENTICATION, tlv.tlv(TAG_RESPONSE, result)), SW_OK


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
