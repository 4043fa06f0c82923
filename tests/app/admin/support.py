"""Helpers of the administration tests: the staff's cards, their browser on the API and on the console."""

from __future__ import annotations

import base64
import html
import re
from urllib.parse import urlsplit

import requests

from tests.app.oidc.support import Browser
from tests.factories import ADMIN_ID, AUDITOR_ID

ZH = {"Accept-Language": "zh-TW"}


class AdminBrowser(Browser):
    """A staff member's browser, logged in with their card, speaking the admin API with the CSRF header."""

    def api(self, method: str, path: str, body: dict | None = None, **kwargs):
        headers = {"X-CSRF-Token": self.csrf()} if method != "GET" else {}
        headers.update(kwargs.pop("headers", {}))
        return self.http.request(method, f"{self.issuer}/api/v1/admin{path}", json=body, headers=headers,
                                 allow_redirects=False, timeout=30, **kwargs)


def forms(page: requests.Response) -> dict[str, dict[str, str]]:
    """The page's forms by action, each with its hidden fields."""
    found = {}
    for attributes, body in re.findall(r"<form\b([^>]*)>(.*?)</form>", page.text, re.S):
        action = html.unescape(re.search(r'action="([^"]*)"', attributes).group(1))
        found[action] = {name: html.unescape(value) for name, value in
                         re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body)}
    return found


class Console:
    """A staff member's browser on the console pages; forms are submitted as the page shows them."""

    def __init__(self, browser: AdminBrowser) -> None:
        self.browser, self.issuer = browser, browser.issuer

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.browser.http.get(self.issuer + path, allow_redirects=False, timeout=30,
                                     headers={**ZH, **kwargs.pop("headers", {})}, **kwargs)

    def submit(self, page: requests.Response, action: str, **fields) -> requests.Response:
        shown = forms(page)
        assert action in shown, f"no form for {action} on the page"
        return self.post(action, {**shown[action], **fields})

    def post(self, path: str, data: dict) -> requests.Response:
        return self.browser.http.post(self.issuer + path, data=data, headers=ZH, allow_redirects=False, timeout=30)

    def follow(self, response: requests.Response) -> requests.Response:
        assert response.status_code in (302, 303), response.text
        return self.get(urlsplit(response.headers["Location"]).path)

    def csrf(self) -> str:
        return forms(self.get("/admin"))["/admin"]["csrf_token"]


def agency_key(app, sp_service_id: str) -> str:
    """The API key MoCert holds for the agency (opened with its key-encryption key), as the agency got it:
    base64."""
    from app.services import agencies
    from app.wiring import parts

    with app.app_context():
        return base64.b64encode(parts().agencies.key_of(agencies.get(sp_service_id))).decode()
