"""The phone's side of its inbox (/m/inbox) over real HTTP, as app/static/js/phone_inbox.js does it, with the
software phone's passkey (its ``browser.get`` makes the assertions a phone's browser would)."""

from __future__ import annotations

import requests

from webauthn.phone import PhoneClient

API = "/api/v1/m/inbox"


class PhoneInbox:
    def __init__(self, issuer: str, phone: PhoneClient) -> None:
        self.issuer, self.phone = issuer, phone
        self.token: str | None = None

    def url(self, path: str = "") -> str:
        return f"{self.issuer}{API}{path}"

    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def options(self) -> dict:
        answer = requests.post(self.url("/options"), json={}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def assertion(self, public_key: dict) -> dict:
        return self.phone.browser.get(public_key, origin=self.issuer)

    def open(self) -> requests.Response:
        """Options, the passkey's answer, and the inbox token kept for the calls after."""
        options = self.options()
        answer = self.send_opening(options["opening"], self.assertion(options["publicKey"]))
        if answer.status_code == 200:
            self.token = answer.json()["inbox_token"]
        return answer

    def send_opening(self, opening: str, credential: dict) -> requests.Response:
        return requests.post(self.url("/open"), json={"opening": opening, "credential": credential}, timeout=10)

    def listing(self) -> requests.Response:
        return requests.get(self.url(), headers=self.auth(), timeout=10)

    def pending(self) -> list[dict]:
        answer = self.listing()
        assert answer.status_code == 200, answer.text
        return answer.json()["requests"]

    def request_options(self, public_id: str) -> requests.Response:
        return requests.post(self.url(f"/requests/{public_id}/options"), json={}, headers=self.auth(), timeout=10)

    def complete(self, public_id: str, credential: dict) -> requests.Response:
        return requests.post(self.url(f"/requests/{public_id}/complete"), json={"credential": credential},
                             headers=self.auth(), timeout=10)

    def approve(self, public_id: str) -> requests.Response:
        """What the person's tap does: the request's options, the passkey over its challenge, the answer."""
        shown = self.request_options(public_id)
        assert shown.status_code == 200, shown.text
        return self.complete(public_id, self.assertion(shown.json()["publicKey"]))

    def decline(self, public_id: str) -> requests.Response:
        return requests.post(self.url(f"/requests/{public_id}/decline"), json={}, headers=self.auth(), timeout=10)

    def subscribe(self, subscription: dict) -> requests.Response:
        return requests.post(self.url("/push-subscription"), json={"subscription": subscription},
                             headers=self.auth(), timeout=10)
