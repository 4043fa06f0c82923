"""Asking an identity-check service whether a card certificate belongs to a national ID.

The last four digits some certificates carry prove little (one person in ten thousand shares them), so a
national ID is claimed only after a service that knows who holds which card says yes. Agencies are said to
have such a service at MOICA; its interface is unconfirmed, so ours is deliberately small:

``POST <url>`` with ``Authorization: Bearer <token>`` and the JSON body
``{"certificate": "<base64 of the certificate's DER>", "national_id": "A123456789"}``; the answer is
``200 {"result": "confirmed"}`` or ``200 {"result": "denied"}``. Anything else (another status, another
body, no answer within the timeout) means the service could not be asked. An adapter in front of the
real service can translate to this.

``requests`` stays behind this module; callers see :class:`IdentityCheckUnavailable`.
"""

from __future__ import annotations

import base64
import enum

import requests


class IdentityCheckUnavailable(Exception):
    """The service gave no usable answer: not configured, unreachable, refused our credentials, or garbled."""


class Verdict(enum.Enum):
    CONFIRMED = "confirmed"
    DENIED = "denied"


class IdentityCheckClient:
    def __init__(self, url: str | None, *, token: str | None, timeout: float) -> None:
        self.url = url
        self._token = token
        self.timeout = timeout

    def check(self, certificate_der: bytes, national_id: str) -> Verdict:
        """Whether the holder of the card with this certificate is the person with ``national_id``.

        Returns :attr:`Verdict.CONFIRMED` or :attr:`Verdict.DENIED`; raises :class:`IdentityCheckUnavailable`.
        """
        if not self.url:
            raise IdentityCheckUnavailable("no identity-check service is configured")
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = {"certificate": base64.b64encode(certificate_der).decode("ascii"), "national_id": national_id}
        try:
            response = requests.post(self.url, json=body, headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise IdentityCheckUnavailable(f"no answer: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise IdentityCheckUnavailable(f"HTTP {response.status_code}")
        try:
            result = response.json().get("result")
            return Verdict(result)
        except (ValueError, AttributeError) as exc:  # not JSON, not an object, or an unknown result
            raise IdentityCheckUnavailable("an answer that is neither confirmed nor denied") from exc
