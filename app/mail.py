"""Sending mail over SMTP (``MOCERT_SMTP_*``). The only module that talks to the mail server."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app

log = logging.getLogger(__name__)


class MailError(Exception):
    """The message could not be handed to the SMTP server."""


def send_mail(to: str, subject: str, body: str) -> None:
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="mocert")
    message.set_content(body)
    if config["MAIL_TO_CONSOLE"]:
        # Development: the mail is also shown where the server runs, so no mail server is needed to try it.
        print(f"\n----- mail to {to} -----\nSubject: {subject}\n\n{body}\n-----", flush=True)
    try:
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=config["SMTP_TIMEOUT"]) as smtp:
            if config["SMTP_STARTTLS"]:
                smtp.starttls(context=ssl.create_default_context())
            if config["SMTP_USERNAME"]:
                smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"] or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("mail to %s not sent: %s", to, exc)
        if not config["MAIL_TO_CONSOLE"]:
            raise MailError(str(exc)) from exc
