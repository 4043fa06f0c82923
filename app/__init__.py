"""The MoCert web application: ``create_app`` binds the extensions and blueprints to one app."""

from __future__ import annotations

from flask import Flask, abort, redirect, request, url_for
from flask_babel import get_locale
from werkzeug.middleware.proxy_fix import ProxyFix

from config import BASE_DIR, Config, config_from_env

from . import refusals, sqlite
from .errors import register_error_handlers
from .extensions import babel, csrf, db, limiter, login_manager, migrate
from .i18n import LANGUAGE_LABELS, select_locale
from .input_checks import check_request
from .models import ID_MAX
from .security import add_security_headers, check_production, check_settings, debugging_problems, refuse
from .services.refusals import Refusal


def ids_in_range(endpoint: str | None, values: dict | None) -> None:
    """An ``<int:…>`` beyond the id columns names nothing: a 404, not an overflow in the database driver.

    Not a maximum on the converter: Werkzeug then answers 405 where a sibling rule has another method.
    """
    if any(type(value) is int and value > ID_MAX for value in (values or {}).values()):
        abort(404)


class MoCertFlask(Flask):
    """Flask whose debug mode production refuses after the factory too: ``flask run`` sets ``app.debug``
    from FLASK_DEBUG once the factory has returned, and ``app.run(debug=True)`` or ``use_debugger`` /
    ``use_reloader`` start Werkzeug's debugger or reloader without the factory seeing them."""

    production = False

    @property
    def debug(self) -> bool:
        return Flask.debug.fget(self)

    @debug.setter
    def debug(self, value: bool) -> None:
        if value and self.production:
            refuse(debugging_problems(value))
        Flask.debug.fset(self, value)

    def run(self, host=None, port=None, debug=None, load_dotenv=True, **options):
        if self.production:
            # Flask's run() defaults the debugger and the reloader to the debug flag, however it was set.
            debug = self.debug if debug is None else debug
            problems = debugging_problems(
                debug, use_debugger=options.get("use_debugger", debug), use_reloader=options.get("use_reloader", debug)
            )
            if problems:
                refuse(problems)
        return super().run(host, port, debug, load_dotenv, **options)


def create_app(config: Config | None = None) -> Flask:
    config = config or config_from_env()
    app = MoCertFlask(__name__, instance_path=str(config.INSTANCE_DIR), instance_relative_config=False)
    app.config.from_object(config)
    if app.config["TRUSTED_PROXIES"]:
        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    check_settings(app.config)
    if config.ENV_NAME == "production":
        app.production = True
        check_production(app.config)  # DEBUG here is FLASK_DEBUG, read by Flask() itself

    from . import wiring

    wiring.install(app)  # every part built now: a wrong setting stops the start, not a first request
    db.init_app(app)
    with app.app_context():
        sqlite.configure(db.engine, busy_timeout=app.config["SQLITE_BUSY_TIMEOUT"])  # before its first connection
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    app.url_value_preprocessor(ids_in_range)
    app.before_request(check_request)  # first of all: before CSRF, the rate limits and every view
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login_page"
    login_manager.session_protection = None  # sessions are server-side records; see services.card_login

    # Flask-Login has one loader per process, and a process may hold several apps (the tests do): each
    # request asks its own app's sessions.
    login_manager.user_loader(lambda token: wiring.parts().login_sessions.load(token))

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.path.startswith("/api/"):
            return refusals.json_response(Refusal("login_required"))
        return redirect(url_for("auth.login_page"))

    from . import account, admin, auth, demo_pki, devices, main, oidc

    app.register_blueprint(main.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(devices.bp)
    app.register_blueprint(devices.phone_bp)
    oidc.init_app(app)  # the OpenID Connect provider (its blueprint and Authlib server)
    from .oidc import phone_login

    app.register_blueprint(phone_login.bp)  # logging in at /authorize: the login page and the phone's side
    app.register_blueprint(phone_login.phone_bp)
    admin.init_app(app)  # the console and /api/v1/admin
    from . import sp_api

    app.register_blueprint(sp_api.bp)  # the agencies' TW FidO API (/moise/sp/…)
    app.register_blueprint(sp_api.phone_bp)
    from . import inbox

    app.register_blueprint(inbox.bp)  # each phone's inbox of the requests agencies push to it
    app.register_blueprint(sp_api.web_bp)  # SP-API-WEB-01: the agency's form, MoCert's page and its calls
    from . import mobile_pki

    csrf.exempt(mobile_pki.bp)  # relying parties post OCSP requests without a session or CSRF token
    app.register_blueprint(mobile_pki.bp)
    if app.config["SERVE_DEMO_PKI"]:
        # OCSP clients post DER without a session or CSRF token.
        csrf.exempt(demo_pki.bp)
        app.register_blueprint(demo_pki.bp)

    register_error_handlers(app)
    app.after_request(add_security_headers)
    from . import audit_sealer

    audit_sealer.init_app(app)  # each process seals the audit trail's new events into its chain
    from . import logout_courier

    logout_courier.init_app(app)  # each process delivers the back-channel logout tokens owed to the sites

    @app.context_processor
    def template_globals():
        return {"current_locale": str(get_locale()), "languages": list(LANGUAGE_LABELS.items())}

    from .cli import register_cli

    register_cli(app)
    return app
