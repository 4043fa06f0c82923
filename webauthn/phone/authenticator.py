"""A software platform authenticator: ES256 credentials kept in a local key file, as a phone keeps passkeys.

It speaks in bytes, as CTAP2's authenticatorMakeCredential and authenticatorGetAssertion do; the browser
half (``webauthn.phone.browser``) speaks the WebAuthn JSON encoding. Everything it produces is built here
from the specifications (authenticator data, COSE key, packed self-attestation), not by the library that
verifies it on the server side, so the two check each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import struct
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor

from .encoding import b64url_decode, b64url_encode
from .errors import InvalidStateError, KeyFileError, NotAllowedError, OptionsError

AAGUID = uuid.UUID("20d2b06a-e7cc-4c4d-9412-da3919f8c6fe")
"""The AAGUID of the MoCert software phone, the same in every copy.

Fixed so that a server can tell this test phone from a real one (and a production deployment can refuse it);
it is in no FIDO metadata service.
"""

COSE_ALG_ES256 = -7
ATTESTATION_FORMATS = ("packed", "none")

# Authenticator data flags (WebAuthn Level 3, §6.1).
FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_BE = 0x08  # backup eligible
FLAG_BS = 0x10  # backed up
FLAG_AT = 0x40  # attested credential data included

KEY_FILE_FORMAT = "mocert-phone-keys"
KEY_FILE_VERSION = 1


@dataclass(frozen=True)
class StoredCredential:
    """A credential the phone holds, without its private key."""

    credential_id: bytes
    rp_id: str
    user_handle: bytes
    user_name: str
    user_display_name: str
    sign_count: int
    created_at: str  # ISO 8601, UTC

    def to_json(self) -> dict:
        return {
            "credential_id": b64url_encode(self.credential_id),
            "rp_id": self.rp_id,
            "user_handle": b64url_encode(self.user_handle),
            "user_name": self.user_name,
            "user_display_name": self.user_display_name,
            "sign_count": self.sign_count,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Attestation:
    """What ``make_credential`` returns: the new credential and its attestation object."""

    credential_id: bytes
    attestation_object: bytes
    authenticator_data: bytes
    public_key: bytes  # SubjectPublicKeyInfo, DER
    algorithm: int = COSE_ALG_ES256


@dataclass(frozen=True)
class Assertion:
    """What ``get_assertion`` returns."""

    credential_id: bytes
    authenticator_data: bytes
    signature: bytes  # ECDSA P-256 with SHA-256, DER, over authenticatorData || clientDataHash
    user_handle: bytes | None


class SoftwareAuthenticator:
    """A platform authenticator with ES256 credentials in ``key_file`` (JSON, mode 0600).

    Every call reads the key file under a lock and writes it back atomically, so several instances and
    processes can share one key file (a credential registered by one can log in through another).
    ``key_file=None`` keeps the credentials in memory only.

    ``user_verified=False`` simulates a phone without biometrics: the UV flag is off, and the phone does not
    refuse when user verification is required (so that a server's test can see such a response, which the
    server must reject). ``backup_eligible``/``backed_up`` set the BE/BS flags (a synced passkey has both).
    ``attestation_format`` is ``"packed"`` (self-attestation) or ``"none"``. ``counter=False`` simulates an
    authenticator whose signature counter stays 0, as synced passkeys do.

    Creating a credential for an RP ID and user handle the phone already has a credential for replaces that
    credential, as CTAP2 says for discoverable credentials (all of this phone's credentials are discoverable).
    """

    aaguid = AAGUID

    def __init__(
        self,
        key_file: Path | str | None,
        *,
        user_verified: bool = True,
        backup_eligible: bool = False,
        backed_up: bool = False,
        attestation_format: str = "packed",
        counter: bool = True,
    ) -> None:
        if backed_up and not backup_eligible:
            raise ValueError("backed_up requires backup_eligible (BS=1 with BE=0 is invalid authenticator data)")
        if attestation_format not in ATTESTATION_FORMATS:
            raise ValueError(f"attestation_format must be one of {ATTESTATION_FORMATS}")
        self.key_file = Path(key_file).expanduser() if key_file is not None else None
        self.user_verified = user_verified
        self.backup_eligible = backup_eligible
        self.backed_up = backed_up
        self.attestation_format = attestation_format
        self.counter = counter
        self._store = _KeyFile(self.key_file) if self.key_file is not None else _MemoryStore()

    # -- authenticatorMakeCredential ---------------------------------------------------------------------

    def make_credential(
        self,
        rp_id: str,
        client_data_hash: bytes,
        user: Mapping,
        exclude_credential_ids: Iterable[bytes] = (),
        require_resident_key: bool = False,
        user_verification: str = "preferred",
    ) -> Attestation:
        """Create an ES256 credential for ``rp_id`` and ``user`` (``{"id": bytes, "name", "displayName"}``).

        Returns the ``Attestation``. Raises ``InvalidStateError`` when the phone holds a credential for
        ``rp_id`` among ``exclude_credential_ids`` (nothing is created then), ``OptionsError`` on bad input.
        ``require_resident_key`` and ``user_verification`` are accepted for the CTAP shape: every credential
        here is discoverable, and verification is whatever ``user_verified`` says.
        """
        _check_client_data_hash(client_data_hash)
        user_id = user.get("id") if isinstance(user, Mapping) else None
        if not isinstance(user_id, bytes) or not 1 <= len(user_id) <= 64:
            raise OptionsError("user.id must be 1 to 64 bytes")
        if not isinstance(rp_id, str) or not rp_id:
            raise OptionsError("rp_id must be a non-empty string")
        excluded = {bytes(credential_id) for credential_id in exclude_credential_ids}

        private_key = ec.generate_private_key(ec.SECP256R1())
        credential_id = os.urandom(32)
        with self._store.transaction() as records:
            if any(r["rp_id"] == rp_id and _id(r) in excluded for r in records):
                raise InvalidStateError("this phone already holds a credential the server excludes (already bound)")
            user_handle = b64url_encode(user_id)
            records[:] = [r for r in records if not (r["rp_id"] == rp_id and r["user_handle"] == user_handle)]
            records.append(
                {
                    "credential_id": b64url_encode(credential_id),
                    "rp_id": rp_id,
                    "user_handle": user_handle,
                    "user_name": str(user.get("name", "")),
                    "user_display_name": str(user.get("displayName", "")),
                    "sign_count": 0,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "private_key": private_key.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                    ).decode("ascii"),
                }
            )

        attested = AAGUID.bytes + struct.pack(">H", len(credential_id)) + credential_id
        auth_data = self._authenticator_data(rp_id, 0, FLAG_AT) + attested + cose_key(private_key.public_key())
        if self.attestation_format == "packed":
            statement = {"alg": COSE_ALG_ES256, "sig": _sign(private_key, auth_data + client_data_hash)}
        else:
            statement = {}
        attestation_object = cbor.encode({"fmt": self.attestation_format, "attStmt": statement, "authData": auth_data})
        spki = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return Attestation(credential_id, attestation_object, auth_data, spki)

    # -- authenticatorGetAssertion -----------------------------------------------------------------------

    def get_assertion(
        self,
        rp_id: str,
        client_data_hash: bytes,
        allow_credential_ids: Iterable[bytes] = (),
        user_verification: str = "preferred",
    ) -> Assertion:
        """Sign ``client_data_hash`` with a credential for ``rp_id``, incrementing its signature counter.

        With an empty ``allow_credential_ids`` any credential for ``rp_id`` may answer (discoverable
        login); when several match, the newest answers (a real phone would let its user choose).
        Returns the ``Assertion``; raises ``NotAllowedError`` when no credential matches.
        """
        _check_client_data_hash(client_data_hash)
        allowed = {bytes(credential_id) for credential_id in allow_credential_ids}
        with self._store.transaction() as records:
            matching = [r for r in records if r["rp_id"] == rp_id and (not allowed or _id(r) in allowed)]
            if not matching:
                raise NotAllowedError(f"this phone holds no credential for {rp_id} that the server accepts")
            record = matching[-1]
            if self.counter:
                record["sign_count"] += 1
            sign_count, pem = record["sign_count"], record["private_key"]
            credential_id, user_handle = _id(record), b64url_decode(record["user_handle"])
        auth_data = self._authenticator_data(rp_id, sign_count, 0)
        signature = _sign(self._store.private_key(pem), auth_data + client_data_hash)
        return Assertion(credential_id, auth_data, signature, user_handle)

    # -- the key file ------------------------------------------------------------------------------------

    def credentials(self, rp_id: str | None = None) -> list[StoredCredential]:
        """The credentials held (for ``rp_id`` only, if given), oldest first."""
        with self._store.transaction(write=False) as records:
            return [
                StoredCredential(
                    credential_id=_id(r),
                    rp_id=r["rp_id"],
                    user_handle=b64url_decode(r["user_handle"]),
                    user_name=r["user_name"],
                    user_display_name=r["user_display_name"],
                    sign_count=r["sign_count"],
                    created_at=r["created_at"],
                )
                for r in records
                if rp_id is None or r["rp_id"] == rp_id
            ]

    def _authenticator_data(self, rp_id: str, sign_count: int, extra_flags: int) -> bytes:
        flags = FLAG_UP | extra_flags
        if self.user_verified:
            flags |= FLAG_UV
        if self.backup_eligible:
            flags |= FLAG_BE
        if self.backed_up:
            flags |= FLAG_BS
        rp_id_hash = hashlib.sha256(rp_id.encode("utf-8")).digest()
        return rp_id_hash + bytes([flags]) + struct.pack(">I", sign_count if self.counter else 0)


def cose_key(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The COSE_Key (RFC 9053) of a P-256 public key for ES256: kty EC2, alg -7, crv P-256, x, y."""
    numbers = public_key.public_numbers()
    x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
    return cbor.encode({1: 2, 3: COSE_ALG_ES256, -1: 1, -2: x, -3: y})


def _sign(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def _id(record: dict) -> bytes:
    return b64url_decode(record["credential_id"])


def _check_client_data_hash(client_data_hash: bytes) -> None:
    if not isinstance(client_data_hash, bytes) or len(client_data_hash) != 32:
        raise OptionsError("client_data_hash must be 32 bytes (SHA-256 of clientDataJSON)")


class _MemoryStore:
    """Credentials kept in memory only."""

    def __init__(self) -> None:
        self._records: list[dict] = []
        self._lock = threading.Lock()
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[list[dict]]:
        with self._lock:
            records = json.loads(json.dumps(self._records))  # a failed operation leaves nothing half-done
            yield records
            if write:
                self._records = records

    def private_key(self, pem: str) -> ec.EllipticCurvePrivateKey:
        key = self._keys.get(pem)
        if key is None:
            key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise KeyFileError("a private key in the key file is not an EC key")
            self._keys[pem] = key
        return key


class _KeyFile(_MemoryStore):
    """Credentials in a JSON file (mode 0600), read under an exclusive lock and replaced atomically.

    The lock is ``<key file>.lock`` beside it (the key file itself is replaced, so it cannot carry the lock).
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[list[dict]]:
        with self._lock, self._file_lock():
            records = self._load()
            yield records
            if write:
                self._save(records)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _load(self) -> list[dict]:
        try:
            with open(self.path, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                if mode & 0o077:
                    raise KeyFileError(
                        f"{self.path} holds private keys but other users may read it: chmod 600 {self.path}"
                    )
                content = json.loads(handle.read())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read the key file {self.path}: {exc}") from exc
        if not isinstance(content, dict) or content.get("format") != KEY_FILE_FORMAT:
            raise KeyFileError(f"{self.path} is not a MoCert phone key file")
        if content.get("version") != KEY_FILE_VERSION:
            raise KeyFileError(f"{self.path} has key file version {content.get('version')}, not {KEY_FILE_VERSION}")
        records = content.get("credentials")
        if not isinstance(records, list):
            raise KeyFileError(f"{self.path} has no credential list")
        return records

    def _save(self, records: list[dict]) -> None:
        content = {"format": KEY_FILE_FORMAT, "version": KEY_FILE_VERSION, "credentials": records}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=2)
                handle.write("\n")
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
