"""臺灣雲市集（示範）: the web app. Its people log in at MoCert through Authlib's OpenID Connect client, or
with 行動自然人憑證 through MoCert's TW FidO API for agencies (``mobile_login.py``, ``twfido_client.py``).

Configuration is read here, in the factory, from ``MARKETPLACE_*`` variables:

=============================  ==========================================================================
``MARKETPLACE_MOCERT_URL``     MoCert, the OpenID provider (``http://localhost:5000``)
``MARKETPLACE_PUBLIC_URL``     where people reach this app (``http://localhost:<port>``, see :func:`port_from`)
``MARKETPLACE_CLIENT_ID``,     the client registered at MoCert; without them, the JSON file written by
``MARKETPLACE_CLIENT_SECRET``  ``python -m examples.marketplace register``
``MARKETPLACE_CLIENT_FILE``    that file (``instance/marketplace-client.json``)
``MARKETPLACE_SP_SERVICE_ID``, the agency registered at MoCert (TW FidO API); without them, the JSON file
``MARKETPLACE_API_KEY``        written by ``python -m examples.marketplace register``; without either, no
                               login with 行動自然人憑證
``MARKETPLACE_AGENCY_FILE``    that file (``instance/marketplace-agency.json``)
``MARKETPLACE_MOCERT_RP_ID``   the WebAuthn site MoCert's phones sign for (MoCert's host)
``MARKETPLACE_SECRET_KEY``     session signing; by default random, made once in ``instance/``
``MARKETPLACE_INSTANCE_DIR``   ``instance/`` at the repository root
``MARKETPLACE_DATABASE``       ``instance/marketplace.db``
=============================  ==========================================================================
"""

from __future__ import annotations

import hmac
import io
import json
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

import qrcode
import qrcode.image.svg
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError

from . import backchannel, mobile_login, subsidy
from .store import Store, TaxIdTaken
from .twfido_client import Refused, TwFidoClient, Unavailable, Untrusted

ROOT = Path(__file__).resolve().parents[2]
SCOPE = "openid profile email"


class ConfigurationError(RuntimeError):
    """The app cannot start: something it needs is missing."""


def load_config(environ=os.environ) -> dict:
    """The settings from the environment (see the module's docstring)."""
    instance = Path(environ.get("MARKETPLACE_INSTANCE_DIR", ROOT / "instance"))
    port = port_from(environ)
    return {
        "INSTANCE_DIR": instance,
        "MOCERT_URL": environ.get("MARKETPLACE_MOCERT_URL", "http://localhost:5000").rstrip("/"),
        "PUBLIC_URL": environ.get("MARKETPLACE_PUBLIC_URL", f"http://localhost:{port}").rstrip("/"),
        "CLIENT_ID": environ.get("MARKETPLACE_CLIENT_ID"),
        "CLIENT_SECRET": environ.get("MARKETPLACE_CLIENT_SECRET"),
        "CLIENT_FILE": Path(environ.get("MARKETPLACE_CLIENT_FILE", instance / "marketplace-client.json")),
        "SP_SERVICE_ID": environ.get("MARKETPLACE_SP_SERVICE_ID"),
        "API_KEY": environ.get("MARKETPLACE_API_KEY"),
        "AGENCY_FILE": Path(environ.get("MARKETPLACE_AGENCY_FILE", instance / "marketplace-agency.json")),
        "MOCERT_RP_ID": environ.get("MARKETPLACE_MOCERT_RP_ID"),
        "SECRET_KEY": environ.get("MARKETPLACE_SECRET_KEY"),
        "DATABASE": Path(environ.get("MARKETPLACE_DATABASE", instance / "marketplace.db")),
    }


def port_from(environ=os.environ) -> int:
    """``MARKETPLACE_PORT``, else ``PORT``, else 5001."""
    return int(environ.get("MARKETPLACE_PORT") or environ.get("PORT") or 5001)


def instance_secret(path: Path) -> str:
    """A random secret kept in ``path`` (mode 0600), made on first use: never a constant in the code."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def _client_credentials(config: dict) -> tuple[str, str]:
    if config["CLIENT_ID"] and config["CLIENT_SECRET"]:
        return config["CLIENT_ID"], config["CLIENT_SECRET"]
    try:
        registered = json.loads(Path(config["CLIENT_FILE"]).read_text())
        return registered["client_id"], registered["client_secret"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"no client credentials: set MARKETPLACE_CLIENT_ID and MARKETPLACE_CLIENT_SECRET, or run "
            f"`python -m examples.marketplace register` (it writes {config['CLIENT_FILE']})"
        ) from None


def _twfido_client(config: dict) -> TwFidoClient | None:
    """The agency's client, or None when the marketplace is not registered as an agency."""
    if config.get("SP_SERVICE_ID") and config.get("API_KEY"):
        sp_service_id, api_key = config["SP_SERVICE_ID"], config["API_KEY"]
    else:
        try:
            registered = json.loads(Path(config["AGENCY_FILE"]).read_text())
            sp_service_id, api_key = registered["sp_service_id"], registered["api_key"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
    try:
        return TwFidoClient(config["MOCERT_URL"], sp_service_id=sp_service_id, api_key=api_key,
                            rp_id=config.get("MOCERT_RP_ID") or urlsplit(config["MOCERT_URL"]).hostname)
    except ValueError as exc:  # a key that is not base64 of 32 bytes
        raise ConfigurationError(f"the agency's API key: {exc}") from None


def create_app(overrides: dict | None = None) -> Flask:
    config = {**load_config(), **(overrides or {})}
    app = Flask(__name__)
    app.config.update(config)
    secret_file = Path(config["INSTANCE_DIR"]) / "marketplace_secret_key"
    app.config["SECRET_KEY"] = config["SECRET_KEY"] or instance_secret(secret_file)
    # Its own cookie name: MoCert's cookie lives on the same host (cookies ignore the port).
    app.config.update(SESSION_COOKIE_NAME="marketplace_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=config["PUBLIC_URL"].startswith("https:"))
    client_id, client_secret = _client_credentials(config)

    oauth = OAuth(app)
    oauth.register(
        "mocert",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{config['MOCERT_URL']}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
    )
    app.extensions["marketplace"] = {"oauth": oauth, "store": Store(config["DATABASE"]),
                                     "twfido": _twfido_client(config)}
    app.jinja_env.globals.update(csrf_token=csrf_token, products=subsidy.PRODUCTS, find_product=subsidy.product,
                                 mobile_login_offered=app.extensions["marketplace"]["twfido"] is not None)
    app.before_request(_check_csrf)
    app.before_request(_end_if_logged_out_at_mocert)
    _routes(app)
    _mobile_login_routes(app)
    return app


# -- helpers ---------------------------------------------------------------------------------------------


def _mocert():
    return current_app.extensions["marketplace"]["oauth"].mocert


def _store() -> Store:
    return current_app.extensions["marketplace"]["store"]


def _twfido() -> TwFidoClient | None:
    return current_app.extensions["marketplace"]["twfido"]


def qr_svg(text: str) -> str:
    """``text`` as a QR code, an inline SVG (qrcode's path image)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=4)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def csrf_token() -> str:
    """The session's CSRF token, put in every form as ``csrf_token``."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _check_csrf():
    if request.method == "POST" and request.endpoint != "backchannel_logout":  # MoCert's post has no session
        sent = request.form.get("csrf_token", "")
        if "csrf" not in session or not hmac.compare_digest(sent, session["csrf"]):
            abort(400, "CSRF token missing or wrong")


def _end_if_logged_out_at_mocert():
    """A login at MoCert that a back-channel logout token ended (by its sid, or its person) ends here: the
    session cookie is the person's, but the store says MoCert ended it."""
    person = session.get("person")
    if not person or person.get("method") != "oidc" or request.endpoint == "backchannel_logout":
        return
    if _store().oidc_session_ended(issuer=person.get("issuer", ""), sid=person.get("sid"), sub=person.get("sub", ""),
                                   logged_in_at=person.get("logged_in_at", 0)):
        session.clear()
        flash("您在 MoCert 的登入已結束，請重新登入。Your login at MoCert has ended; please log in again.")


def _person() -> dict | None:
    return session.get("person")


def _login_required():
    """Nobody logged in: to the front page and its ways to log in, not straight to MoCert's login page (Back
    after logging out would land there)."""
    if _person() is None:
        flash("請先登入。Please log in first.")
        return redirect(url_for("index"))
    return None


# -- routes ----------------------------------------------------------------------------------------------


def _routes(app: Flask) -> None:
    @app.after_request
    def _not_kept(response):
        # A logged-in page is never kept: Back after logging out asks again, and shows nobody's data.
        if _person() is not None:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index():
        if request.args.get("state"):  # back from MoCert's logout
            try:
                _mocert().validate_logout_response()
                flash("您已登出。You are logged out.")
            except AuthlibBaseError:
                pass
        person = _person()
        company = _store().company_of(person["owner"]) if person else None
        return render_template("index.html", person=person, company=company)

    @app.get("/login")
    def login():
        try:  # the first request fetches MoCert's discovery document
            return _mocert().authorize_redirect(f"{current_app.config['PUBLIC_URL']}/callback")
        except requests.RequestException as exc:
            current_app.logger.warning("MoCert unreachable: %r", exc)
            message = "暫時無法連線到 MoCert，請稍後再試。MoCert cannot be reached; please try again later."
            return render_template("error.html", message=message), 503

    @app.get("/callback")
    def callback():
        mocert = _mocert()
        try:
            token = mocert.authorize_access_token()  # code + PKCE verifier → tokens; ID token verified
            claims = token["userinfo"]  # the ID token's claims (signature, iss, aud, exp, nonce checked)
            info = mocert.userinfo(token=token)
        except (AuthlibBaseError, JoseError, requests.RequestException, KeyError) as exc:
            current_app.logger.warning("login at MoCert failed: %r", exc)
            return render_template("error.html", message="登入失敗，請再試一次。Login failed; please try again."), 400
        if info.get("sub") != claims["sub"]:  # OIDC Core 5.3.2: userinfo must be about the same person
            return render_template("error.html", message="登入失敗。Login failed."), 400
        session.clear()
        session["person"] = {
            "owner": f"{claims['iss']} {claims['sub']}",
            "name": info.get("name") or claims.get("name") or "",
            "email": info.get("email") or "",
            "method": "oidc",
            # What MoCert's back-channel logout token will name: this MoCert session (sid), or the person.
            "issuer": claims["iss"],
            "sub": claims["sub"],
            "sid": claims.get("sid"),
            "logged_in_at": time.time(),
        }
        session["id_token"] = token["id_token"]
        return redirect(_after_login())

    @app.route("/join", methods=["GET", "POST"])
    def join():
        if (to_login := _login_required()) is not None:
            return to_login
        owner = _person()["owner"]
        if _store().company_of(owner) is not None:
            return redirect(url_for("company"))
        if request.method == "GET":
            return render_template("join.html", form={}, error=None)
        form = {
            "name": request.form.get("name", "").strip(),
            "tax_id": request.form.get("tax_id", "").strip(),
            "has_other_subsidy": request.form.get("has_other_subsidy") == "yes",
        }
        error = None
        if not form["name"]:
            error = "請填寫公司名稱。Enter the company's name."
        elif not subsidy.is_valid_tax_id(form["tax_id"]):
            error = "統一編號不正確。That is not a valid tax ID (統一編號)."
        else:
            try:
                _store().join(owner, subsidy.Company(**form))
            except TaxIdTaken:
                error = "此統一編號已由他人加入。Another person already joined this company."
        if error:
            return render_template("join.html", form=form, error=error), 400
        return redirect(url_for("company"))

    @app.get("/company")
    def company():
        if (to_login := _login_required()) is not None:
            return to_login
        owner = _person()["owner"]
        company_ = _store().company_of(owner)
        if company_ is None:
            return redirect(url_for("join"))
        return render_template("company.html", person=_person(), company=company_,
                               purchases=_store().purchases_of(owner))

    @app.get("/buy/<product_id>")
    def confirm_purchase(product_id: str):
        """What buying would cost, asked before it is done: a purchase spends points that do not come back."""
        product = subsidy.product(product_id)
        if product is None:
            abort(404)
        if (to_login := _login_required()) is not None:
            return to_login
        company_ = _store().company_of(_person()["owner"])
        if company_ is None:
            return redirect(url_for("join"))
        return render_template("confirm_purchase.html", company=company_, product=product,
                               quote=company_.quote(product.price))

    @app.post("/buy/<product_id>")
    def buy(product_id: str):
        product = subsidy.product(product_id)
        if product is None:
            abort(404)
        if (to_login := _login_required()) is not None:
            return to_login
        if request.form.get("confirm") != "yes":  # not from the confirmation page: show it first
            return redirect(url_for("confirm_purchase", product_id=product.id), code=303)
        try:
            purchase = _store().buy(_person()["owner"], product)
        except LookupError:
            return redirect(url_for("join"))
        # Post/redirect/get: reloading the confirmation must not buy again.
        return redirect(url_for("purchase", purchase_id=purchase.id), code=303)

    @app.get("/purchases/<int:purchase_id>")
    def purchase(purchase_id: int):
        if (to_login := _login_required()) is not None:
            return to_login
        owner = _person()["owner"]
        found = _store().purchases_of(owner, purchase_id)
        if not found:
            abort(404)
        return render_template("purchase.html", company=_store().company_of(owner),
                               product=subsidy.product(found[0].product), payment=found[0].payment)

    @app.post("/backchannel-logout")
    def backchannel_logout():
        """OpenID Connect Back-Channel Logout §2.5: MoCert posts ``logout_token``; a valid one ends the session
        it names (the next page load of that browser finds it ended). 200 when done, 400 otherwise (§2.8)."""
        mocert = _mocert()
        try:
            metadata = mocert.load_server_metadata()

            def verified(jwks):
                return backchannel.verify(request.form.get("logout_token"), jwks=jwks, issuer=metadata["issuer"],
                                          client_id=mocert.client_id)
            try:
                claims = verified(mocert.fetch_jwk_set())
            except backchannel.UnknownKey:  # MoCert rotated its key since the keys were fetched: once more
                claims = verified(mocert.fetch_jwk_set(force=True))
        except backchannel.InvalidLogoutToken as refused:
            current_app.logger.warning("logout token refused: %s", refused)
            return _no_store(jsonify(error="invalid_request", error_description=str(refused)), 400)
        except (requests.RequestException, KeyError, ValueError, RuntimeError) as exc:
            current_app.logger.warning("MoCert's keys unreachable for a logout token: %r", exc)
            return _no_store(jsonify(error="temporarily_unavailable"), 503)
        if not _store().end_oidc_session(issuer=claims["iss"], sid=claims.get("sid"), sub=claims.get("sub"),
                                         jti=claims["jti"], expires_at=float(claims["exp"] + backchannel.LEEWAY),
                                         now=time.time()):  # kept as long as the token would be taken
            return _no_store(jsonify(error="invalid_request", error_description="jti already used"), 400)
        return _no_store(current_app.response_class(status=200))

    @app.post("/logout")
    def logout():
        """End our session, then MoCert's (RP-initiated logout); MoCert sends the person back to ``/``. A
        login with 行動自然人憑證 opened no session at MoCert: ours alone ends."""
        id_token = session.get("id_token")
        method = (_person() or {}).get("method")
        session.clear()
        if method == "mobile":
            flash("您已登出。You are logged out.")
            return redirect(url_for("index"), code=303)
        return _mocert().logout_redirect(
            post_logout_redirect_uri=f"{current_app.config['PUBLIC_URL']}/",
            id_token_hint=id_token,
        )


def _no_store(response, status: int | None = None):
    if status is not None:
        response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _after_login() -> str:
    """Where a person goes once logged in: to join, or to their company."""
    return url_for("join") if _store().company_of(session["person"]["owner"]) is None else url_for("company")


# -- 行動自然人憑證 (TW FidO API for agencies) -----------------------------------------------------------

# MoCert's refusals as the marketplace words them: (zh-TW, English, whether to offer binding a phone).
# "Unknown at MoCert" and "no usable phone" are worded alike: whoever types an ID here learns neither.
MOBILE_NOT_USABLE = ("此身分證字號目前無法以行動自然人憑證登入。若您尚未綁定，請先至 MoCert 綁定手機並申請行動自然人憑證，再回來登入。",
                     "This national ID cannot log in with the mobile certificate now. If you have not yet, "
                     "bind a phone at MoCert first, then come back.", True)
MOBILE_REFUSALS = {
    "IDNUM_USERPROF_NF": MOBILE_NOT_USABLE,
    "IDNUM_DEVPROF_NF": MOBILE_NOT_USABLE,
    "PM_IDN_FT_ERR": ("身分證字號不正確，請再確認。", "That is not a valid national ID; please check it.", False),
    "APP_USER_CANCEL": ("您已在手機上拒絕這次登入。", "You declined this login on your phone.", False),
    "SPTKT_OVD": ("登入請求已逾時，請重新登入。", "The login request expired; please start again.", False),
}
MOBILE_FAILED = ("登入失敗，請再試一次。", "Login failed; please try again.", False)
MOBILE_REVOKED = ("此手機的行動自然人憑證已被廢止或暫停使用，無法以此手機登入。請至 MoCert 查看您的手機。",
                  "This phone's mobile certificate is revoked or suspended: it cannot log in. See your phones "
                  "at MoCert.", False)
MOBILE_UNAVAILABLE = ("暫時無法連線到 MoCert，請稍後再試。", "MoCert cannot be reached; please try again later.", False)
MOBILE_ENDED = ("這次登入已結束，請重新登入。", "This login has ended; please start again.", False)
MOBILE_TOO_MANY = {
    "visitor": ("登入嘗試過於頻繁，請稍候一分鐘再試。", "Too many login attempts; please wait a minute.", False),
    "push": ("此身分證字號的推播次數已達上限（每 10 分鐘 3 次），請稍後再試，或改以手機掃描 QR Code。",
             "This national ID was pushed to 3 times in 10 minutes; try later, or scan a QR code instead.", False),
}


def _mobile_message(code: str | None) -> dict:
    zh, en, bind = MOBILE_REFUSALS.get(code or "", (
        f"MoCert 拒絕了這次登入（{code}）。", f"MoCert refused this login ({code}).", False))
    return _message((zh, en, bind))


def _message(words: tuple[str, str, bool]) -> dict:
    zh, en, bind = words
    return {"zh": zh, "en": en,
            "bind_url": f"{current_app.config['MOCERT_URL']}/account/devices/bind" if bind else None}


def _mobile_login_routes(app: Flask) -> None:
    @app.route("/login/mobile", methods=["GET", "POST"])
    def mobile_login_start():
        """The national ID, and how the phone gets the request: scanning a QR code, or a push."""
        if _twfido() is None:
            message = ("臺灣雲市集尚未向 MoCert 註冊為需用機關，暫無法以行動自然人憑證登入。",
                       "The marketplace is not registered at MoCert as an agency yet: no mobile login.", False)
            return render_template("mobile_login.html", error=_message(message), national_id=""), 503
        if request.method == "GET":
            return render_template("mobile_login.html", error=None, national_id="")
        national_id = request.form.get("national_id", "")
        try:
            login = mobile_login.start(_twfido(), _store(), national_id, push=request.form.get("mode") == "push",
                                       visitor=request.remote_addr or "")
        except mobile_login.InvalidNationalId:
            return render_template("mobile_login.html", error=_mobile_message("PM_IDN_FT_ERR"),
                                   national_id=national_id), 400
        except mobile_login.TooManyLogins as limited:
            return render_template("mobile_login.html", error=_message(MOBILE_TOO_MANY[limited.which]),
                                   national_id=national_id), 429
        except Refused as refusal:  # the person is unknown, has no phone...
            return render_template("mobile_login.html", error=_mobile_message(refusal.code),
                                   national_id=national_id), 400
        except (Unavailable, Untrusted) as exc:
            current_app.logger.warning("mobile login not started: %r", exc)
            words, status = (MOBILE_UNAVAILABLE, 503) if isinstance(exc, Unavailable) else (MOBILE_FAILED, 502)
            return render_template("mobile_login.html", error=_message(words), national_id=national_id), status
        session["mobile_login"] = login.id
        return redirect(url_for("mobile_login_wait"), code=303)

    @app.get("/login/mobile/wait")
    def mobile_login_wait():
        """The QR code (or where the push went) and the hint, while the page polls /login/mobile/status."""
        login = _store().mobile_login(session.get("mobile_login", ""))
        if login is None:
            return redirect(url_for("mobile_login_start"))
        qr = qr_svg(login.sp_ticket) if login.op_mode != "PUSH" else None
        return render_template("mobile_wait.html", login=login, qr=qr)

    @app.post("/login/mobile/status")
    def mobile_login_status():
        """The page's poll (JSON): pending, refused or failed (with words), or logged in (and where next)."""
        login_id = session.get("mobile_login", "")
        outcome = mobile_login.poll(_twfido(), _store(), login_id) if login_id and _twfido() else None
        if outcome is None or outcome.status == "ended":
            session.pop("mobile_login", None)
            return jsonify(status="ended", message=_message(MOBILE_ENDED))
        if outcome.status == "pending":
            return jsonify(status="pending")
        if outcome.status != "logged_in":
            session.pop("mobile_login", None)
            message = (_mobile_message(outcome.code) if outcome.status == "refused"
                       else _message(MOBILE_REVOKED if outcome.status == "revoked" else MOBILE_FAILED))
            return jsonify(status=outcome.status, code=outcome.code, message=message)
        login, approval = outcome.login, outcome.approval
        session.clear()  # a new session for the person logged in (the CSRF token with it)
        session["person"] = {
            # The marketplace knows the person by the ID they typed, which MoCert's answer matched.
            "owner": f"{current_app.config['MOCERT_URL']} national-id-sha256:{approval.hashed_id_num}",
            "name": approval.name,
            "email": "",
            "method": "mobile",
            "national_id_masked": login.national_id_masked,
        }
        return jsonify(status="logged_in", next=_after_login())
