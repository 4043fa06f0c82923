"""Sending mail over SMTP (``MOCERT_SMTP_*``), and the mails MoCert writes. The only module that talks to the
mail server."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app
from flask_babel import gettext as _

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
        # Even when the console showed it: the person was not mailed, and their page and the audit say so.
        raise MailError(str(exc) or type(exc).__name__) from exc


class Letters:
    """The mails to a person, in the request's language: the services say what to tell, this says it.

    Each raises :class:`MailError` when the mail could not be handed over.
    """

    def confirmation_code(self, to: str, *, code: str, minutes: int) -> None:
        body = _(
            "Your MoCert confirmation code is %(code)s. It is valid for %(minutes)d minutes.\n"
            "If you did not register with MoCert, ignore this mail.",
            code=code,
            minutes=minutes,
        )
        send_mail(to, _("MoCert email confirmation code: %(code)s", code=code), body)

    def card_not_linked(self, to: str, *, masked: str) -> None:
        body = _(
            "Someone logged in to MoCert with an IC card issued for the national ID of your account (%(masked)s) "
            "and tried to link it to your account. The name on that card differs from your account's, so the card "
            "was not linked and your account is unchanged.\n"
            "Whether or not this was you, please contact the service desk to resolve it.",
            masked=masked,
        )
        send_mail(to, _("MoCert: a card could not be linked to your account"), body)
