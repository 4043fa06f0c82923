"""The provider's signing keys: PEM files in ``OIDC_KEYS_DIR`` named ``<unix time>-<kid>.pem``.

The newest key of an algorithm signs; an older one stays published in the JWKS until
``OIDC_KEY_RETIRE_AFTER`` after its successor took over, so tokens it signed still verify. Keys are
parsed at startup (a key that does not load stops it, naming ``MOCERT_OIDC_KEYS_DIR``) and again only
when the directory changes (``oidc rotate-key`` adds a file). Imports no Flask.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, KeySet, RSAKey

ALGORITHMS = ("RS256", "ES256")

log = logging.getLogger(__name__)


class NoSigningKey(Exception):
    """No key for the algorithm is in the keys directory (``flask oidc rotate-key`` makes one)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    created: int  # unix time, from the file name
    key: RSAKey | ECKey

    def public_jwk(self) -> dict:
        return {**self.key.as_dict(private=False), "kid": self.kid, "alg": self.alg, "use": "sig"}


class KeyRing:
    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = sorted(keys, key=lambda k: (k.created, k.kid))

    def signing_key(self, alg: str) -> SigningKey:
        candidates = [k for k in self.keys if k.alg == alg]
        if not candidates:
            raise NoSigningKey(f"no {alg} signing key")
        return candidates[-1]

    def published(self, retire_after: timedelta, now: float | None = None) -> list[SigningKey]:
        """Every algorithm's current key, and older ones whose successor is younger than ``retire_after``."""
        now = time.time() if now is None else now
        keep = []
        for alg in ALGORITHMS:
            same = [k for k in self.keys if k.alg == alg]
            for older, newer in zip(same, same[1:]):
                if now - newer.created < retire_after.total_seconds():
                    keep.append(older)
            keep.extend(same[-1:])
        return keep

    def jwks(self, retire_after: timedelta) -> dict:
        return {"keys": [k.public_jwk() for k in self.published(retire_after)]}

    def verification_keys(self, retire_after: timedelta) -> KeySet:
        return KeySet([k.key for k in self.published(retire_after)])


def _algorithm_of(private_key) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("signing keys must be RSA or EC P-256")


def read_keys(directory: Path) -> KeyRing:
    """The keys in ``directory`` (none if it does not exist). Raises ``ValueError`` naming a file that does
    not hold an unencrypted RSA or EC P-256 private key, or when ``directory`` is not a directory."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    keys = []
    for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
        created, _, kid = path.stem.partition("-")
        if not created.isdigit() or not kid:
            continue
        try:
            private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            alg = _algorithm_of(private_key)
        except (ValueError, TypeError, OSError) as exc:  # TypeError: an encrypted key
            raise ValueError(f"{path} is not a signing key MoCert can use: {exc}") from None
        key_class = RSAKey if alg == "RS256" else ECKey
        jwk = key_class.import_key(private_key, {"kid": kid, "alg": alg, "use": "sig"})
        keys.append(SigningKey(kid=kid, alg=alg, created=int(created), key=jwk))
    return KeyRing(keys)


def create_key(directory: Path, alg: str = "RS256", now: float | None = None) -> SigningKey:
    """Write a new private key file; it becomes the signing key for ``alg`` at once."""
    if alg not in ALGORITHMS:
        raise ValueError(f"alg must be one of {', '.join(ALGORITHMS)}")
    private_key = rsa.generate_private_key(65537, 2048) if alg == "RS256" else ec.generate_private_key(ec.SECP256R1())
    key_class = RSAKey if alg == "RS256" else ECKey
    kid = key_class.import_key(private_key).thumbprint()[:16]
    directory = Path(directory)
    newest = max((k.created for k in read_keys(directory).keys), default=0)
    created = max(int(time.time() if now is None else now), newest + 1)  # strictly newer: it must sign
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(directory / f"{created}-{kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return read_keys(directory).signing_key(alg)


def ensure_keys(directory: Path) -> list[SigningKey]:
    """Create the first key of each algorithm when there is none; returns the keys created."""
    ring = read_keys(directory)
    return [create_key(directory, alg) for alg in ALGORITHMS if not any(k.alg == alg for k in ring.keys)]


class CachedKeyRing:
    """Parses the directory once, and again only when its listing changes (a new key was added)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._ring = KeyRing([])

    @classmethod
    def loaded(cls, directory: Path) -> CachedKeyRing:
        """A cache with the directory read now: what :func:`read_keys` refuses raises here, at startup."""
        cache = cls(directory)
        cache._ring, cache._stamp = read_keys(cache.directory), cache._current_stamp()
        return cache

    def _current_stamp(self) -> tuple:
        try:
            stat = self.directory.stat()
        except FileNotFoundError:
            return (None,)
        return (stat.st_mtime_ns, stat.st_ino, len(os.listdir(self.directory)))

    def get(self) -> KeyRing:
        stamp = self._current_stamp()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._ring = read_keys(self.directory)
                    except ValueError:
                        # A bad file dropped in while serving: keep signing with the keys that loaded.
                        log.exception("the OIDC signing keys in %s could not be read again", self.directory)
                    self._stamp = stamp
        return self._ring


def check_client_jwks(jwks: object) -> None:
    """A client's registered key set (``private_key_jwt``): public keys that parse. Raises ``ValueError``."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError("a JWKS is an object with a non-empty keys list")
    if any(not isinstance(key, dict) or "d" in key for key in jwks["keys"]):
        raise ValueError("only public keys belong in a client's JWKS")
    try:
        KeySet.import_key_set(jwks)
    except Exception as exc:  # joserfc raises a variety of errors for keys it cannot read
        raise ValueError(f"the JWKS cannot be read: {exc}") from None
