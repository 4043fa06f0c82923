"""The cookie's side of logging in and out, for every view that does: the services keep the server-side
session, these keep the browser's cookie in step with it."""

from __future__ import annotations

from flask import request, session
from flask_login import current_user, login_user, logout_user

from ..models import Account
from ..services.sessions import Browser

# The card login a registration must name, kept in the cookie between the login and the form.
PENDING_REGISTRATION_KEY = "pending_card_login"


def browser() -> Browser:
    """The request's browser: its address, its user agent, and the session it holds now (a login ends it)."""
    held = current_user.auth_session if current_user.is_authenticated else None
    return Browser(ip=request.remote_addr, user_agent=request.user_agent.string or None, held=held)


def log_in(account: Account) -> None:
    """Start a fresh cookie (no fixation) for the session a service has just opened for ``account``."""
    session.clear()
    session.permanent = True
    login_user(account)


def await_registration(login_id: str) -> None:
    """A fresh cookie that holds only the card login waiting to register."""
    session.clear()
    session[PENDING_REGISTRATION_KEY] = login_id


def pending_registration() -> object:
    return session.get(PENDING_REGISTRATION_KEY)


def log_out() -> None:
    if current_user.is_authenticated:
        logout_user()
    session.clear()
