"""The load generator's HTTP: a keep-alive connection with a cookie jar, as little work per request as a
browser's worth of behaviour allows (``http.client``, not ``requests``: the load generator shares the
machine's cores with the servers it measures, so what it spends per login is taken from them).

:class:`HttpBrowser` talks to a server over TCP; :class:`AppBrowser` has the same methods over a Flask test
client, so that one login can be driven through the app in this process (to count its SQL).
"""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True)
class Answer:
    status: int
    location: str | None
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class AnswerError(Exception):
    """A step of a ceremony got an answer it should not have."""

    def __init__(self, step: str, answer: Answer) -> None:
        super().__init__(f"{step}: {answer.status} {answer.text[:200]}")
        self.step, self.answer = step, answer


def expect(step: str, status: int, answer: Answer) -> Answer:
    """``answer`` if its status is ``status``; else ``AnswerError``."""
    if answer.status != status:
        raise AnswerError(step, answer)
    return answer


class HttpBrowser:
    """One client's connection to ``127.0.0.1:port``, sending ``Host: localhost:port`` (the origin the
    servers' WebAuthn checks), never following redirects. ``forget()`` empties the cookie jar: a new
    browser on the same connection."""

    def __init__(self, port: int, *, timeout: float = 60) -> None:
        self.port, self.timeout = port, timeout
        self.host = f"localhost:{port}"
        self.cookies: dict[str, str] = {}
        self._connection: http.client.HTTPConnection | None = None

    def forget(self) -> None:
        self.cookies.clear()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def get(self, path: str) -> Answer:
        return self._send("GET", path, None, {})

    def post_json(self, path: str, body: object, *, csrf: str | None = None) -> Answer:
        headers = {"Content-Type": "application/json"}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return self._send("POST", path, json.dumps(body).encode(), headers)

    def post_form(self, path: str, fields: dict, *, basic: tuple[str, str] | None = None) -> Answer:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        return self._send("POST", path, urlencode(fields).encode(), headers)

    def _send(self, method: str, path: str, body: bytes | None, headers: dict) -> Answer:
        headers["Host"] = self.host
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            fresh = self._connection is None
            if fresh:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self._connection.request(method, path, body, headers)
                response = self._connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection as we reused it: once more on a new one.
                self.close()
                if fresh or attempt == 2:
                    raise
        for cookie in response.msg.get_all("Set-Cookie") or ():
            self._keep(cookie)
        if response.will_close:
            self.close()
        return Answer(response.status, response.getheader("Location"), data)

    def _keep(self, header: str) -> None:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.strip().partition("=")
        if "max-age=0" in attributes.lower().replace(" ", ""):
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value


class AppBrowser:
    """:class:`HttpBrowser`'s methods over a Flask test client of ``app`` (its own cookie jar), as if it
    were served on ``public_url``."""

    def __init__(self, app, public_url: str) -> None:
        self._client = app.test_client()
        self._base = public_url

    def get(self, path: str) -> Answer:
        return self._answer(self._client.get(path, base_url=self._base))

    def post_json(self, path: str, body: object, *, csrf: str | None = None) -> Answer:
        headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
        return self._answer(self._client.post(path, json=body, headers=headers, base_url=self._base))

    def post_form(self, path: str, fields: dict, *, basic: tuple[str, str] | None = None) -> Answer:
        headers = {}
        if basic is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        return self._answer(self._client.post(path, data=fields, headers=headers, base_url=self._base))

    @staticmethod
    def _answer(response) -> Answer:
        return Answer(response.status_code, response.headers.get("Location"), response.get_data())
