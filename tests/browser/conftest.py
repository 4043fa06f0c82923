"""Browser tests: Debian's Chromium driven by Playwright against the app served over real HTTP.

Never downloads a browser: Chromium comes from Debian (`.ci/run` installs it). As root it needs
--no-sandbox, and the background-networking flags keep it from calling out of this closed machine.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.serving import make_server

from tests.factories import make_staff
from tests.support import browser_card_login, missing

from .support import VIRTUAL_PHONE, verified_account

CHROMIUM = os.environ.get("MOCERT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(params=["sqlite"])
def database_url(sqlite_database):
    # The pages are the same on either database; the API tests cover both.
    return sqlite_database


@pytest.fixture
def staff(app, pki):
    """陳美玲 an admin and 林志豪 an auditor (tests/factories.py)."""
    return make_staff(app, pki)


@pytest.fixture
def live_server(app):
    """The app on http://localhost:<port> (localhost, as WebAuthn will need)."""
    server = make_server("localhost", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["PUBLIC_URL"] = f"http://localhost:{server.server_port}"
    from app import wiring

    wiring.install(app)  # the parts are built from the configuration: again, for the port just chosen
    yield app.config["PUBLIC_URL"]
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not (shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)):
        missing(f"Chromium not found at {CHROMIUM} (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="zh-TW", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _phone_page(browser):
    """A new context of ``browser`` playing the phone, with a user-verifying platform authenticator."""
    context = browser.new_context(
        locale="zh-TW",
        viewport={"width": 390, "height": 844},
        user_agent="Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156 Mobile",
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_PHONE})
    page.authenticator = (cdp, authenticator["authenticatorId"])
    return page


@pytest.fixture
def phone(browser):
    """A second browser context playing the phone, with a user-verifying platform authenticator."""
    page = _phone_page(browser)
    yield page
    page.context.close()


@pytest.fixture
def camera_phone(browser, tmp_path):
    """``camera_phone(frame)``: a phone (as ``phone``) whose camera films ``frame``, a PIL image of
    640×480. Chromium's fake capture device plays a file named when the browser starts, so each such phone
    is a Chromium of its own."""
    launched = []

    def open_phone(frame):
        import io

        video = tmp_path / f"camera-{len(launched)}.mjpeg"  # Motion JPEG: the frames one after another
        with video.open("wb") as out:
            for _ in range(3):
                jpeg = io.BytesIO()
                frame.convert("RGB").save(jpeg, format="JPEG", quality=90)
                out.write(jpeg.getvalue())
        camera = browser.browser_type.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ])
        launched.append(camera)
        page = _phone_page(camera)
        page.context.grant_permissions(["camera"])
        return page

    yield open_phone
    for camera in launched:
        camera.close()


@pytest.fixture
def login_page(page, live_server, app):
    """``login_page(agent_url)``: /login with the card component at ``agent_url``."""

    def open_login(agent_url: str):
        app.config["COMPONENT_URL"] = agent_url
        page.goto(f"{live_server}/login")
        return page

    return open_login


@pytest.fixture
def relying_party():
    """A tiny site that records the query of each request to its redirect URI."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            parts = urlsplit(self.path)
            if parts.path == "/cb":  # not the browser's /favicon.ico
                seen.append({k: v[0] for k, v in parse_qs(parts.query).items()})
            body = b"<!doctype html><title>RP</title><p id=rp>back at the site</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


@pytest.fixture
def device(page, live_server, pki, app):
    """This browser bound as 王小明's phone through the real binding flow (one tab: the virtual authenticator
    is the tab's, so its passkey is "a passkey on this device"), then logged out of MoCert; returns the CDP
    session and the authenticator's id."""
    from playwright.sync_api import expect

    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator_id = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_PHONE})["authenticatorId"]

    verified_account(app, pki)
    assert browser_card_login(page, live_server, pki, "A123456789")["status"] == "logged_in"
    page.goto(f"{live_server}/account/devices/bind")
    link = page.locator("#bind-link")
    expect(link).to_have_text(re.compile(rf"^{re.escape(live_server)}/m/bind/\S+$"))  # the binding is made
    bind_url = link.text_content()
    page.goto(bind_url)  # the binding QR code's link, opened on this device
    page.fill("#device-name", "我的筆電")
    page.click("#phone-bind-button")
    expect(page.locator("#phone-done")).to_be_visible()
    [credential] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert credential["isResidentCredential"] is True

    page.goto(f"{live_server}/account")
    page.click("#logout-button")
    page.wait_for_url(f"{live_server}/")
    return cdp, authenticator_id
