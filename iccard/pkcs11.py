"""Cards through a PKCS#11 module (the card vendor's, OpenSC's, SoftHSM), the only module that imports
python-pkcs11.

:class:`Pkcs11Module` loads a module once and lists its slots as :class:`~iccard.cards.CardSlot` objects; a
slot's card is a :class:`~iccard.cards.Card`. python-pkcs11's exceptions become ours, the same ones the PIV
path raises (:class:`~iccard.errors.WrongPin`, :class:`~iccard.errors.PinBlocked`,
:class:`~iccard.errors.NoCard`, :class:`~iccard.errors.CardRemoved`, ...), so nothing above this module
knows which way a card was read.

What PKCS#11 does not say, and what we do about it:

- How many PIN tries are left. A token's flags say only "the final try" (CKF_USER_PIN_FINAL_TRY),
  "locked" (CKF_USER_PIN_LOCKED) and "fewer than the maximum" (CKF_USER_PIN_COUNT_LOW), read just after a
  failed login: a wrong PIN carries tries_left 1 on the final try and None ("not said") otherwise.
- Which certificate is for what. Certificates are told apart by their content: a CA certificate by its
  basicConstraints, the signing one by keyUsage digitalSignature, the encryption one by keyEncipherment
  or dataEncipherment (for the one use alone before one that does both), each of the latter two only with
  a key of the same CKA_ID on the token.
- The card number. MOICA's module (HiCOS) reports it as the token's serial number; SoftHSM's tokens carry
  it as their label; OpenSC's PIV emulation has neither (label: the holder's name, serial: the hex of the last 8
  characters of the card number) but shows the card's CHUID as a data object, whose GUID holds it.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

try:
    import pkcs11 as _pkcs11
    from pkcs11 import Attribute, CertificateType, Mechanism, ObjectClass, SlotFlag, TokenFlag
    from pkcs11 import exceptions as _p11
except ImportError as exc:
    raise ImportError(
        "iccard.pkcs11 needs python-pkcs11: install the agent extra: pip install .[agent] "
        "(or pip install --require-hashes -r requirements-agent.txt)"
    ) from exc

from cryptography import x509

from . import tlv
from .errors import (
    CardError,
    CardRemoved,
    DecryptionFailed,
    MalformedPin,
    ModuleUnavailable,
    NoCard,
    PinBlocked,
    PinRequired,
    ReaderUnavailable,
    UnsupportedCard,
    WrongPin,
)
from .formats import CARD_NUMBER, check_pin
from .piv import DECRYPTION_FAILED, TAG_GUID, TAG_OBJECT_DATA


# The PIV CHUID's OID (SP 800-73-4 part 1, table 3), as OpenSC gives it in CKA_OBJECT_ID: the bare
# content octets, or (as PKCS#11 says it should be) the whole DER.
_CHUID_OID = bytes.fromhex("60864801650307023000")  # 2.16.840.1.101.3.7.2.48.0
_CHUID_OIDS = {_CHUID_OID, b"\x06" + bytes([len(_CHUID_OID)]) + _CHUID_OID}

# python-pkcs11 names its exceptions after the CKR_ values; a few spell them their own way.
_CKR_SPELLINGS = {"TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED", "FunctionCancelled": "CKR_FUNCTION_CANCELED"}
# What a failed decryption may be without being about the ciphertext: a PIN wanted, refused or blocked, the card gone.
_NOT_ABOUT_THE_CIPHERTEXT = (WrongPin, PinBlocked, PinRequired, MalformedPin, NoCard, CardRemoved, ReaderUnavailable)
# What a module answers for a session when the card left: the device went, or it closed the session.
_CARD_GONE = (_p11.DeviceRemoved, _p11.SessionClosed, _p11.SessionHandleInvalid)


# CK_FUNCTION_LIST (PKCS#11 v2.40 section 5.16) as far as C_CloseAllSessions: a CK_VERSION, then one pointer
# per function in the standard's order. Windows builds pack PKCS#11 structures to 1 byte (pkcs11.h's
# CK_PTR conventions), other platforms align them as the compiler does.
_FUNCTIONS_TO_CLOSE_ALL = (
    "C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList", "C_GetSlotInfo",
    "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken", "C_InitPIN", "C_SetPIN",
    "C_OpenSession", "C_CloseSession", "C_CloseAllSessions",
)


class _CkFunctionList(ctypes.Structure):
    if sys.platform == "win32":
        _pack_ = 1
    _fields_ = [("version", ctypes.c_ubyte * 2), *((name, ctypes.c_void_p) for name in _FUNCTIONS_TO_CLOSE_ALL)]


class _SessionCloser:
    """C_CloseAllSessions for a slot, which python-pkcs11 (0.10) does not offer.

    Needed because python-pkcs11 loses sessions: ``Token.open(user_pin=...)`` opens a session, then logs in,
    and on a refused login raises without closing it (a session leaked for every wrong PIN); and
    ``Session.close()`` skips C_CloseSession when C_Logout fails, which can leave the token logged in, so the
    next login answers CKR_USER_ALREADY_LOGGED_IN. The call goes through the module's own function list
    (C_GetFunctionList), in the library python-pkcs11 already loaded and initialized: the same file, opened
    again by the same path, is the same library with the same sessions (RTLD_NOLOAD: never a second copy).
    Closing every session of the slot is safe because the agent holds one conversation with a card at a time
    (the component's card lock) and this process is the module's only user of its sessions.
    """

    def __init__(self, path: str) -> None:
        library = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
        functions = ctypes.POINTER(_CkFunctionList)()
        get_function_list = library.C_GetFunctionList
        get_function_list.restype = ctypes.c_ulong
        get_function_list.argtypes = [ctypes.POINTER(ctypes.POINTER(_CkFunctionList))]
        if get_function_list(ctypes.byref(functions)) != 0 or not functions:
            raise OSError(f"{path} gives no function list")
        self._close_all = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong)(functions.contents.C_CloseAllSessions)

    def close_all_sessions(self, slot_id: int) -> None:
        self._close_all(slot_id)  # CKR_OK, or the card is gone and its sessions with it: nothing to do either way


def ckr_name(error: Exception) -> str:
    """The PKCS#11 return value python-pkcs11's ``error`` stands for (``CKR_PIN_INCORRECT``)."""
    name = type(error).__name__
    return _CKR_SPELLINGS.get(name) or "CKR_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


class Pkcs11Module:
    """A PKCS#11 module, loaded and initialized (C_Initialize) once per process and path.

    Calling it lists the slots worth showing as :class:`Pkcs11Slot` objects: every slot whose token holds a
    certificate with its key, and every empty slot of a removable device (a reader without a card), so that
    a page can say "insert your card" rather than "no reader". Raises
    :class:`~iccard.errors.ModuleUnavailable` when the module cannot be loaded or initialized.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if not Path(self.path).is_file():
            raise ModuleUnavailable(f"cannot load the PKCS#11 module {self.path}: no such file")
        try:
            # python-pkcs11 keeps one library object per path, initialized once: the same file by another
            # name (a symlink) would be initialized again and answer CKR_CRYPTOKI_ALREADY_INITIALIZED.
            self._lib = _pkcs11.lib(str(Path(self.path).resolve()))
        except _p11.PKCS11Error as exc:
            raise ModuleUnavailable(f"cannot load the PKCS#11 module {self.path}: {_reason(exc)}") from exc
        self.description = f"{self._lib.manufacturer_id.strip()} {self._lib.library_description.strip()}".strip()
        try:
            self._sessions = _SessionCloser(self._lib.so)
        except (OSError, AttributeError) as exc:
            raise ModuleUnavailable(f"cannot use the PKCS#11 module {self.path}: {exc}") from exc

    def close(self) -> None:
        """C_Finalize: the module closes its sessions and lets go of the readers (pcscd counts a handle OpenSC
        keeps on a card that is gone, and refuses others the reader). For every object of this path: a later
        ``Pkcs11Module(path)`` initializes it again."""
        with suppress(_p11.PKCS11Error):
            self._lib.finalize()

    def __call__(self) -> list[Pkcs11Slot]:
        try:
            slots = self._lib.get_slots()
        except _p11.PKCS11Error as exc:
            raise ReaderUnavailable(f"the PKCS#11 module {self.path} lists no slots: {_reason(exc)}") from exc
        listed = []
        for slot in slots:
            try:
                token = slot.get_token()
            except _p11.TokenNotPresent:
                if slot.flags & SlotFlag.REMOVABLE_DEVICE:
                    listed.append(Pkcs11Slot(slot, self._sessions))
                continue
            except _p11.PKCS11Error:  # unrecognized, or gone between the two calls
                continue
            if token.flags & TokenFlag.TOKEN_INITIALIZED and _holds_a_card(token):
                listed.append(Pkcs11Slot(slot, self._sessions))
        return listed


def _holds_a_card(token) -> bool:
    try:
        with _public_session(token) as session:
            return _TokenObjects.read(session).signing is not None
    except CardError:
        return False


class Pkcs11Slot:
    """A PKCS#11 slot as a :class:`~iccard.cards.CardSlot`; ``name`` is its slot description."""

    def __init__(self, slot, sessions: _SessionCloser) -> None:
        self._slot = slot
        self._sessions = sessions

    @property
    def name(self) -> str:
        return self._slot.slot_description.strip()

    def has_card(self) -> bool:
        try:
            self._slot.get_token()
        except _p11.PKCS11Error:
            return False
        return True

    @contextmanager
    def open(self) -> Iterator[Pkcs11Card]:
        """The token as a card for one conversation; logged out and its session closed afterwards."""
        with _mapped():
            token = self._slot.get_token()
        card = Pkcs11Card(token, self._sessions)
        try:
            yield card
        finally:
            card.close()


@dataclass(frozen=True)
class _Certificate:
    key_id: bytes
    certificate: x509.Certificate

    def usage(self) -> x509.KeyUsage | None:
        try:
            return self.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return None

    def is_ca(self) -> bool:
        try:
            return self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            return False

    def signs(self) -> bool:
        usage = self.usage()
        return usage is not None and usage.digital_signature

    def encrypts(self) -> bool:
        usage = self.usage()
        return usage is not None and (usage.key_encipherment or usage.data_encipherment)


@dataclass(frozen=True)
class _TokenObjects:
    """What a token shows before login: its certificates, those with a key, its CHUID if a PIV card."""

    certificates: tuple[_Certificate, ...]
    keyed: tuple[_Certificate, ...]  # the certificates with a key of their CKA_ID, in order of preference
    chuid: bytes | None

    @classmethod
    def read(cls, session) -> _TokenObjects:
        with _mapped():
            certificates = []
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                            Attribute.CERTIFICATE_TYPE: CertificateType.X_509}):
                try:
                    certificates.append(_Certificate(_attribute(obj, Attribute.ID, b""),
                                                     x509.load_der_x509_certificate(obj[Attribute.VALUE])))
                except (ValueError, _p11.PKCS11Error):  # unreadable or not X.509 after all: not ours to use
                    continue
            keys: dict[bytes, bool] = {}
            # Many tokens hide private keys until the PIN is verified, but show the public key of the pair.
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
                keys.setdefault(_attribute(obj, Attribute.ID, b""), False)
            keys.update(_private_keys(session))
            chuid = None
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.DATA}):
                if _attribute(obj, Attribute.OBJECT_ID, b"") in _CHUID_OIDS:
                    chuid = _attribute(obj, Attribute.VALUE, None)
        # Several keys may share one certificate (OpenSC shows a PIV card's 9A and 9C): prefer the key that
        # needs the PIN once per login, then the lowest CKA_ID, so that the choice is the same every time.
        # Over OpenSC's PIV emulation that is 9A (PIV Authentication, PIN once per login) rather than 9C
        # (Digital Signature, PIN before each use): acceptable because our cards (and the emulated one) hold
        # the same certificate and key in both, and it spares a second PIN prompt per signature.
        # A key seen only as a public key may have no private key behind it: checked when it is used, after
        # the PIN (see Pkcs11Card._private_key).
        keyed = sorted((c for c in certificates if c.key_id in keys), key=lambda c: (keys[c.key_id], c.key_id))
        return cls(tuple(certificates), tuple(keyed), chuid)

    @property
    def signing(self) -> _Certificate | None:
        # A certificate for signing alone (a citizen card's cert1) before one that also encrypts, as
        # Python's sort is stable: within each, the order of preference of ``keyed``.
        candidates = [c for c in self.keyed if c.signs() and not c.is_ca()]
        return next(iter(sorted(candidates, key=_Certificate.encrypts)), None)

    @property
    def encryption(self) -> _Certificate | None:
        signing = self.signing
        candidates = [c for c in self.keyed if c.encrypts() and not c.is_ca()]
        # A certificate for encryption alone first (a citizen card's cert2), then another than the signing
        # one, else the signing one if it also encrypts.
        return next(iter(sorted(candidates, key=lambda c: (c == signing, c.signs()))), None)

    @property
    def ca(self) -> list[x509.Certificate]:
        # Not "without a key": OpenSC makes up a private key for every certificate on a PIV card.
        return [c.certificate for c in self.certificates if c.is_ca()]


def _private_keys(session) -> dict[bytes, bool]:
    """The private keys the session shows: CKA_ID → the key wants the PIN again before each use."""
    with _mapped():
        return {_attribute(obj, Attribute.ID, b""): bool(_attribute(obj, Attribute.ALWAYS_AUTHENTICATE, False))
                for obj in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})}


class Pkcs11Card:
    """A token as a :class:`~iccard.cards.Card`: one session at a time, public until :meth:`verify_pin`."""

    def __init__(self, token, sessions: _SessionCloser) -> None:
        self._token = token
        self._sessions = sessions
        self._session = _open_session(token)
        self._logged_in = False
        self._pin: str | None = None  # kept only for a key that wants it before every use
        # The private keys as the logged-in session shows them: many tokens show none (nor, so, their
        # CKA_ALWAYS_AUTHENTICATE) before the PIN is verified.
        self._keys: dict[bytes, bool] = {}
        try:
            self._objects = _TokenObjects.read(self._session)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        session, self._session, self._pin, self._logged_in = self._session, None, None, False
        if session is not None:
            try:
                session.close()  # python-pkcs11 logs out (C_Logout) first when the session logged in
            except _p11.PKCS11Error:
                # A card already gone cannot log out or close. Or C_Logout failed, and python-pkcs11 then
                # skipped C_CloseSession: closing them all also logs the token out (the last session gone).
                self._close_all_sessions()

    def _close_all_sessions(self) -> None:
        self._sessions.close_all_sessions(self._token.slot.slot_id)

    def card_number(self) -> str:
        serial = self._token.serial.decode("ascii", "replace").strip()
        label = self._token.label.strip()
        for candidate in (serial, label, self._chuid_card_number()):
            if candidate and CARD_NUMBER.match(candidate):
                return candidate
        return serial or label

    def _chuid_card_number(self) -> str:
        if not self._objects.chuid:
            return ""
        try:
            guid = tlv.parse_dict(tlv.unwrap(self._objects.chuid, TAG_OBJECT_DATA)).get(TAG_GUID, b"")
            return guid.decode("ascii")
        except (tlv.TlvError, UnicodeDecodeError):
            return ""

    def signing_certificate(self) -> x509.Certificate:
        signing = self._objects.signing
        if signing is None:
            raise UnsupportedCard("the token holds no signing certificate with its key")
        return signing.certificate

    def encryption_certificate(self) -> x509.Certificate | None:
        encryption = self._objects.encryption
        return encryption.certificate if encryption else None

    def ca_certificates(self) -> list[x509.Certificate]:
        return self._objects.ca

    def verify_pin(self, pin: str) -> None:
        """C_Login as the user. Raises MalformedPin (nothing sent), WrongPin, PinBlocked."""
        check_pin(pin)
        # python-pkcs11 logs in only as it opens a session: the public session makes way for a logged-in one.
        self.close()
        with self._pin_counted():
            self._session = self._logged_in_session(pin)
        self._logged_in = True
        # Kept for a key that wants the PIN again before each use (CKA_ALWAYS_AUTHENTICATE), signing or
        # encryption, until that key has used it (see _pin_for) or the conversation ends (close).
        self._keys = _private_keys(self._session)
        chosen = (self._objects.signing, self._objects.encryption)
        if any(c is not None and self._keys.get(c.key_id) for c in chosen):
            self._pin = pin

    def _logged_in_session(self, pin: str):
        try:
            return _open_session(self._token, user_pin=pin)
        except (_p11.PinIncorrect, CardError) as exc:
            # python-pkcs11 opened the session before C_Login and leaves it open when the login fails.
            self._close_all_sessions()
            if not isinstance(exc.__cause__, _p11.UserAlreadyLoggedIn):
                raise
        # A session of ours stayed logged in (C_Logout failed, see _SessionCloser). It is closed now, and the
        # token logged out with it: the login again, so that this PIN is checked rather than taken on trust.
        try:
            return _open_session(self._token, user_pin=pin)
        except (_p11.PinIncorrect, CardError):
            self._close_all_sessions()
            raise

    def sign(self, digest_info: bytes) -> bytes:
        """CKM_RSA_PKCS over the DigestInfo (the module pads it), with the signing certificate's key."""
        signing = self._objects.signing
        if signing is None:
            raise UnsupportedCard("the token holds no signing certificate with its key")
        key = self._private_key(signing.key_id)
        pin = self._pin_for(signing.key_id)
        with _mapped(), self._pin_counted():
            return key.sign(digest_info, mechanism=Mechanism.RSA_PKCS, pin=pin)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """CKM_RSA_PKCS decryption with the encryption certificate's key."""
        encryption = self._objects.encryption
        if encryption is None:
            raise UnsupportedCard("the token holds no encryption certificate with its key")
        key = self._private_key(encryption.key_id)
        pin = self._pin_for(encryption.key_id)
        try:
            with _mapped(), self._pin_counted():
                return key.decrypt(ciphertext, mechanism=Mechanism.RSA_PKCS, pin=pin)
        except _NOT_ABOUT_THE_CIPHERTEXT:
            raise
        except CardError:
            # Every refusal (CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE, SoftHSM's
            # CKR_GENERAL_ERROR for bad padding, ...) is the one DecryptionFailed the PIV path raises, saying
            # nothing of which: that difference is Bleichenbacher's padding oracle. Not chained, for the same reason.
            raise DecryptionFailed(DECRYPTION_FAILED) from None

    def change_pin(self, old: str, new: str) -> None:
        """C_SetPIN, in a read-write session of its own (the standard allows it in no other)."""
        check_pin(old)
        check_pin(new)
        with _mapped():
            session = self._token.open(rw=True)
        try:
            with _mapped(), self._pin_counted():
                session.set_pin(old, new)
        finally:
            with suppress(_p11.PKCS11Error):
                session.close()

    def _pin_for(self, key_id: bytes) -> str | None:
        """The PIN for one use of a key that wants it before each use (then forgotten), else None."""
        if not self._keys.get(key_id):
            return None
        pin, self._pin = self._pin, None
        return pin

    def _private_key(self, key_id: bytes):
        if not self._logged_in:
            raise PinRequired(message="the token wants the PIN verified first (CKR_USER_NOT_LOGGED_IN)")
        with _mapped():
            try:
                return self._session.get_key(ObjectClass.PRIVATE_KEY, id=key_id)
            except _p11.NoSuchKey as exc:
                raise UnsupportedCard(f"the token shows the certificate of CKA_ID {key_id.hex()} but no private key "
                                      "for it, even with the PIN verified") from exc
            except _p11.MultipleObjectsReturned as exc:
                raise UnsupportedCard(f"more than one private key with CKA_ID {key_id.hex()} on the token") from exc

    @contextmanager
    def _pin_counted(self) -> Iterator[None]:
        """A refused PIN as the token's flags, read just after, tell it (PKCS#11 gives no count)."""
        try:
            yield
        except _p11.PinIncorrect as exc:
            flags = self._flags()
            # The wrong PIN that blocks the card comes back as CKR_PIN_INCORRECT with the flags saying locked.
            if flags & TokenFlag.USER_PIN_LOCKED:
                raise PinBlocked("the PIN is blocked") from exc
            raise WrongPin(1 if flags & TokenFlag.USER_PIN_FINAL_TRY else None) from exc

    def _flags(self) -> int:
        try:
            return self._token.slot.get_token().flags
        except _p11.PKCS11Error:
            return 0


def _attribute(obj, attribute, default):
    try:
        return obj[attribute]
    except (_p11.AttributeTypeInvalid, _p11.AttributeSensitive, _p11.FunctionFailed, _p11.GeneralError):
        return default


def _open_session(token, **kwargs):
    with _mapped():
        return token.open(**kwargs)


@contextmanager
def _public_session(token) -> Iterator[object]:
    session = _open_session(token)
    try:
        yield session
    finally:
        with suppress(_p11.PKCS11Error):
            session.close()


@contextmanager
def _mapped() -> Iterator[None]:
    """python-pkcs11's exceptions as ours (a wrong PIN is left to :meth:`Pkcs11Card._pin_counted`)."""
    try:
        yield
    except _p11.PinIncorrect:
        raise
    except _p11.TokenNotPresent as exc:
        raise NoCard("no card in the reader") from exc
    except _CARD_GONE as exc:
        raise CardRemoved(f"the card was removed ({ckr_name(exc)})") from exc
    except _p11.TokenNotRecognised as exc:
        raise UnsupportedCard("the PKCS#11 module does not recognize the card (CKR_TOKEN_NOT_RECOGNIZED)") from exc
    except _p11.PinLocked as exc:
        raise PinBlocked("the PIN is blocked") from exc
    except (_p11.PinLenRange, _p11.PinInvalid) as exc:
        raise MalformedPin(f"the token refuses the PIN's form ({ckr_name(exc)})") from exc
    except _p11.UserNotLoggedIn as exc:
        raise PinRequired(message="the token wants the PIN verified first (CKR_USER_NOT_LOGGED_IN)") from exc
    except _p11.PKCS11Error as exc:
        raise CardError(f"the PKCS#11 module answered {ckr_name(exc)}") from exc


def _reason(error: Exception) -> str:
    return str(error) or ckr_name(error)
