"""Which attestation roots we trust: none required, a fixed list, or a FIDO MDS3 blob loaded from a file.

The statement itself (signatures, format rules, certificates valid at ``now``, links of the chain) is
verified in :mod:`webauthn.attestation` whatever the policy; the policy only decides whether the chain
has to end at a root we trust. Under a policy that requires one, ``self`` and ``none`` attestation carry
no chain and are refused as ``attestation_untrusted``.

The MDS3 blob is read from a file the operator downloads and checks in (or a job refreshes); this module
never fetches anything. Its signature is verified by python-fido2's ``parse_blob`` against the MDS root
given; python-fido2 checks no dates, so the blob's certificates and its ``nextUpdate`` are checked here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fido2.mds3 import MdsAttestationVerifier, MetadataBlobPayload, MetadataBlobPayloadEntry, parse_blob
from fido2.webauthn import Aaguid, AuthenticatorData

from ._encoding import Malformed, b64url_decode
from .attestation import VerifiedStatement, issued_by
from .errors import WebAuthnError


def _untrusted(message: str) -> WebAuthnError:
    return WebAuthnError("attestation_untrusted", message)


def load_certificate(data: bytes | str | x509.Certificate) -> x509.Certificate:
    """Load a certificate given as DER, PEM (bytes or str) or a ``cryptography`` certificate."""
    if isinstance(data, x509.Certificate):
        return data
    if isinstance(data, str):
        data = data.encode("ascii")
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _chains_to(
    certificates: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], now: datetime
) -> x509.Certificate | None:
    """The anchor the (already linked and dated) chain ends at, if any; anchors must be valid at ``now``."""
    anchors = [a for a in anchors if a.not_valid_before_utc <= now <= a.not_valid_after_utc]
    for certificate in certificates:  # an anchor that is itself in x5c (some chains include the root)
        for anchor in anchors:
            if certificate == anchor:
                return anchor
    last = certificates[-1]
    for anchor in anchors:  # a configured anchor is trusted to issue, whatever its own extensions say
        if issued_by(last, anchor):
            return anchor
    return None


@dataclass(frozen=True)
class TrustPolicy:
    """How registration decides whether an attestation chain is trusted.

    Build with :meth:`any`, :meth:`roots` or :meth:`mds3`, never directly.
    """

    kind: str
    anchors: tuple[x509.Certificate, ...] = ()
    mds: MdsAttestationVerifier | None = None
    blob: MetadataBlobPayload | None = None

    @property
    def requires_trusted_root(self) -> bool:
        return self.kind != "any"

    @classmethod
    def any(cls) -> TrustPolicy:
        """Statements are verified, but no trusted root is required (the default).

        ``VerifiedRegistration.attestation_trusted`` is then always False.
        """
        return cls("any")

    @classmethod
    def roots(cls, certificates: Iterable[bytes | str | x509.Certificate]) -> TrustPolicy:
        """The chain must end at (or contain) one of these root certificates (DER or PEM), valid at ``now``.

        Raises ``ValueError`` for an empty list or a certificate that does not parse.
        """
        anchors = tuple(load_certificate(c) for c in certificates)
        if not anchors:
            raise ValueError("TrustPolicy.roots needs at least one root certificate")
        return cls("roots", anchors=anchors)

    @classmethod
    def mds3(
        cls,
        blob_path: Path | str,
        mds_root_der: bytes,
        now: datetime | None = None,
        *,
        allow_stale: bool = False,
    ) -> TrustPolicy:
        """Trust what a FIDO Metadata Service (MDS3) blob, read from ``blob_path``, lists.

        The blob's JWS signature and certificate chain are verified to ``mds_root_der`` (fido2's
        ``parse_blob``), and its certificates must be valid at ``now`` (default: the real clock). A blob
        whose ``nextUpdate`` is before ``now`` is stale and refused unless ``allow_stale``. Entries marked
        REVOKED, and attestation keys reported compromised, are left out (fido2's default filters). A
        registration is then trusted when its AAGUID (or, for U2F, its certificate key identifier) has an
        entry whose attestation root the chain ends at.

        Returns the policy. Raises ``OSError`` when the file cannot be read and ``WebAuthnError`` with
        reason ``mds_blob_invalid`` or ``mds_blob_stale``.
        """
        now = _aware(now)
        blob = Path(blob_path).read_bytes().strip()
        try:
            mds_root = load_certificate(mds_root_der)
            header = json.loads(b64url_decode(blob.split(b".")[0].decode("ascii"), "MDS blob header"))
            chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header.get("x5c", [])]
            payload = parse_blob(blob, mds_root.public_bytes(Encoding.DER))
        except (Malformed, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise WebAuthnError("mds_blob_invalid", f"MDS blob does not verify: {exc!r}") from None
        except Exception as exc:  # fido2's InvalidSignature, cryptography's InvalidSignature
            raise WebAuthnError("mds_blob_invalid", f"MDS blob signature does not verify: {exc!r}") from None
        for certificate in [*chain, mds_root]:
            if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
                raise WebAuthnError(
                    "mds_blob_invalid", f"MDS certificate {certificate.subject.rfc4514_string()!r} not valid at {now}"
                )
        if payload.next_update < now.date() and not allow_stale:
            raise WebAuthnError("mds_blob_stale", f"MDS blob no. {payload.no} was due for update {payload.next_update}")
        return cls("mds3", mds=MdsAttestationVerifier(payload), blob=payload)

    def entry_for(self, aaguid: str | bytes) -> MetadataBlobPayloadEntry | None:
        """The MDS entry for an AAGUID (UUID string or 16 bytes), if this is an MDS3 policy and one exists."""
        if self.mds is None:
            return None
        key = Aaguid.parse(aaguid) if isinstance(aaguid, str) else Aaguid(aaguid)
        return self.mds.find_entry_by_aaguid(key)

    def evaluate(self, statement: VerifiedStatement, auth_data: AuthenticatorData, *, now: datetime) -> bool:
        """Return whether the statement's chain ends at a trusted root.

        Under :meth:`any` returns False without looking. Otherwise returns True, or raises
        ``WebAuthnError("attestation_untrusted")`` (self/none attestation, no matching root, an MDS entry
        missing or filtered out, a root not valid at ``now``).
        """
        if not self.requires_trusted_root:
            return False
        if statement.attestation_type in ("self", "none") or not statement.certificates:
            raise _untrusted(f"{statement.attestation_type} attestation has no chain to a trusted root")
        if self.kind == "roots":
            anchors: Sequence[x509.Certificate] = self.anchors
        else:
            assert self.mds is not None  # noqa: S101
            try:
                root = self.mds.ca_lookup(statement.result, auth_data)
            except Exception as exc:  # fido2 lookups parse certificates and may raise on odd ones
                raise _untrusted(f"MDS lookup failed: {exc!r}") from None
            if not root:
                raise _untrusted("no MDS entry (or no matching attestation root) for this authenticator")
            anchors = [load_certificate(root)]
        anchor = _chains_to(statement.certificates, anchors, now)
        if anchor is None:
            raise _untrusted("the attestation chain does not end at a trusted root valid at this time")
        return True


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(timezone.utc)
