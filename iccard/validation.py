"""RFC 5280 path validation of card certificates, with revocation, on pyhanko-certvalidator.

This is the only module that imports pyhanko-certvalidator. Path building, policy processing and
OCSP/CRL checking are the library's; what we add is what it leaves to the caller:

* our own errors, one per reason a relying party must distinguish;
* a revocation cache shared across logins that keeps each OCSP response and CRL until its nextUpdate
  (the library's fetchers only cache within one validation), so a busy login page does not ask the CA
  for every sign-in.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers.api import CRLFetcher, Fetchers, OCSPFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    PKIXValidationParams,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from .errors import (
    CertificateExpired,
    CertificateNotAccepted,
    CertificateNotYetValid,
    CertificateRevoked,
    RevocationUnknown,
    UnknownIssuer,
)

REVOCATION_MODES = ("hard-fail", "soft-fail")


@dataclass(frozen=True)
class TrustSettings:
    """What a deployment trusts: roots, the intermediates it may meet, policies, revocation mode."""

    anchors: tuple[bytes, ...]  # DER
    intermediates: tuple[bytes, ...] = ()
    policy_oids: tuple[str, ...] = ()
    revocation_mode: str = "hard-fail"
    fetch_timeout: float = 5.0


class RevocationCache:
    """Thread-safe store of revocation answers, each kept until its own nextUpdate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[object, tuple[object, datetime]] = {}

    def get(self, key: object, now: datetime) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires = entry
            if now >= expires:
                del self._entries[key]
                return None
            return value

    def put(self, key: object, value: object, expires: datetime | None) -> None:
        # No nextUpdate means "fetch again next time": a cache must not invent a validity period.
        if expires is None:
            return
        with self._lock:
            self._entries[key] = (value, expires)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class CardCertificateValidator:
    """Validates a card's signing certificate to the configured trust anchors at the current time."""

    def __init__(self, settings: TrustSettings, cache: RevocationCache | None = None) -> None:
        if settings.revocation_mode not in REVOCATION_MODES:
            raise ValueError(f"revocation mode must be one of {REVOCATION_MODES}")
        if not settings.anchors:
            raise ValueError("at least one trust anchor is required")
        self._settings = settings
        self._anchors = [asn1_x509.Certificate.load(der) for der in settings.anchors]
        self._intermediates = [asn1_x509.Certificate.load(der) for der in settings.intermediates]
        self._cache = cache or RevocationCache()
        self._backend = RequestsFetcherBackend(per_request_timeout=settings.fetch_timeout)
        rule = (
            RevocationCheckingRule.CRL_OR_OCSP_REQUIRED
            if settings.revocation_mode == "hard-fail"
            else RevocationCheckingRule.CHECK_IF_DECLARED_SOFT
        )
        self._revinfo_policy = CertRevTrustPolicy(
            RevocationCheckingPolicy(
                ee_certificate_rule=rule,
                # CA certificates are checked when they declare where to look (MOICA's does).
                intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
            )
        )
        self._pkix_params = (
            PKIXValidationParams(
                user_initial_policy_set=frozenset(settings.policy_oids),
                initial_explicit_policy=True,
            )
            if settings.policy_oids
            else None
        )

    @property
    def revocation_cache(self) -> RevocationCache:
        return self._cache

    def validate(self, certificate: x509.Certificate, extra_certs: Sequence[x509.Certificate] = ()) -> None:
        """Raise one of the card-login errors unless the certificate is valid for signing right now."""
        _check_signing_certificate(certificate)
        end_entity = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
        inner = self._backend.get_fetchers()
        fetchers = Fetchers(
            ocsp_fetcher=_CachingOCSPFetcher(inner.ocsp_fetcher, self._cache),
            crl_fetcher=_CachingCRLFetcher(inner.crl_fetcher, self._cache),
            cert_fetcher=inner.cert_fetcher,
        )
        context = ValidationContext(
            trust_roots=self._anchors,
            other_certs=[
                *self._intermediates,
                *(asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in extra_certs),
            ],
            allow_fetching=True,
            fetchers=fetchers,
            revinfo_policy=self._revinfo_policy,
        )
        validator = CertificateValidator(end_entity, validation_context=context, pkix_params=self._pkix_params)
        try:
            _run_sync(validator.async_validate_usage({"digital_signature", "non_repudiation"}))
        except pv_errors.RevokedError as exc:
            raise CertificateRevoked(str(exc)) from exc
        except pv_errors.InsufficientRevinfoError as exc:
            raise RevocationUnknown(str(exc)) from exc
        except pv_errors.ExpiredError as exc:
            raise CertificateExpired(str(exc)) from exc
        except pv_errors.NotYetValidError as exc:
            raise CertificateNotYetValid(str(exc)) from exc
        except pv_errors.PathBuildingError as exc:
            raise UnknownIssuer(str(exc)) from exc
        except pv_errors.InvalidCertificateError as exc:
            raise CertificateNotAccepted(str(exc)) from exc
        except pv_errors.PathValidationError as exc:
            raise _classify_path_error(exc) from exc


def _check_signing_certificate(certificate: x509.Certificate) -> None:
    """Refuse a CA or non-signing certificate before asking any responder about it."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise CertificateNotAccepted("a CA certificate cannot log in")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateNotAccepted("the certificate states no key usage") from None
    if not usage.digital_signature:
        raise CertificateNotAccepted("the certificate's key is not for signing")


def _classify_path_error(exc: pv_errors.PathValidationError) -> Exception:
    # The library's remaining PathValidationErrors carry no subtype for these cases, only a message.
    text = str(exc).lower()
    if "revocation" in text or "ocsp" in text or "crl" in text:
        return RevocationUnknown(str(exc))
    if "signature" in text:
        return UnknownIssuer(str(exc))
    return CertificateNotAccepted(str(exc))


def _run_sync(coroutine):
    """Run the library's coroutine to completion from synchronous code.

    Inside a thread that already runs an event loop (an async server, or anything driving one) a
    second loop cannot start, so the work goes to a short-lived thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _CachingOCSPFetcher(OCSPFetcher):
    def __init__(self, inner: OCSPFetcher, cache: RevocationCache) -> None:
        self._inner, self._cache = inner, cache
        self._by_cert: dict[object, list[asn1_ocsp.OCSPResponse]] = {}

    async def fetch(self, cert, authority) -> asn1_ocsp.OCSPResponse:
        key = ("ocsp", authority.public_key.sha256, cert.serial_number)
        response = self._cache.get(key, _now())
        if response is None:
            response = await self._inner.fetch(cert, authority)
            self._cache.put(key, response, _ocsp_next_update(response))
        self._by_cert.setdefault(cert.issuer_serial, []).append(response)
        return response

    def fetched_responses(self) -> Iterable[asn1_ocsp.OCSPResponse]:
        return [r for responses in self._by_cert.values() for r in responses]

    def fetched_responses_for_cert(self, cert) -> Iterable[asn1_ocsp.OCSPResponse]:
        return self._by_cert.get(cert.issuer_serial, [])


class _CachingCRLFetcher(CRLFetcher):
    def __init__(self, inner: CRLFetcher, cache: RevocationCache) -> None:
        self._inner, self._cache = inner, cache
        self._by_cert: dict[object, list[asn1_crl.CertificateList]] = {}

    async def fetch(self, cert, *, use_deltas=None) -> Iterable[asn1_crl.CertificateList]:
        key = ("crl", tuple(sorted(_crl_urls(cert))))
        crls = self._cache.get(key, _now())
        if crls is None:
            crls = list(await self._inner.fetch(cert, use_deltas=use_deltas))
            updates = [c["tbs_cert_list"]["next_update"].native for c in crls]
            self._cache.put(key, crls, min(updates) if updates and None not in updates else None)
        self._by_cert[cert.issuer_serial] = crls
        return crls

    def fetched_crls(self) -> Iterable[asn1_crl.CertificateList]:
        return [c for crls in self._by_cert.values() for c in crls]

    def fetched_crls_for_cert(self, cert) -> Iterable[asn1_crl.CertificateList]:
        return self._by_cert[cert.issuer_serial]


def _ocsp_next_update(response: asn1_ocsp.OCSPResponse) -> datetime | None:
    try:
        if response["response_status"].native != "successful":
            return None
        single = response.basic_ocsp_response["tbs_response_data"]["responses"][0]
        return single["next_update"].native
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None


def _crl_urls(cert: asn1_x509.Certificate) -> list[str]:
    urls = []
    for point in cert.crl_distribution_points or []:
        urls.append(point.url or "")
    return urls
