"""Browser tests: Debian's Chromium driven by Playwright against the app served over real HTTP.

Never downloads a browser: Chromium comes from Debian (`.ci/run` installs it). As root it needs
--no-sandbox, and the background-networking flags keep it from calling out of this closed machine.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from tests.factories import make_staff
from tests.support import missing

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
