"""Mail through an outbox: queued inside the deciding transaction, sent by the worker after commit.

A rolled-back request never mails anyone, and a mail server that is down delays mail instead of losing it.
`MAIL_URL` picks the transport: `smtp://host:port` (or `smtps://`, with optional user:password), or, when empty,
one `.eml` file per message in `MAIL_DIR` so a new user can read what the shop sent.

A mail is `templates/mail/<template>.txt`; when `templates/mail/<template>.html` exists too, it goes out as
multipart/alternative (the text first, then the HTML, so a reader that shows one part shows the richer one), and
inside multipart/mixed when it carries an attachment.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.policy import default as default_policy
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template
from jinja2 import TemplateNotFound
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from storefront import clock, wakeups
from storefront.domain.shop_pages import shop_settings
from storefront.models import OutboxMessage
from storefront.unit_of_work import after_commit, write_transaction

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
SEND_BATCH = 50
LEASE = timedelta(minutes=5)
# Headers mail programs read as a URL: folded at 78 characters, a long one would be written as RFC 2047 encoded
# words, which List-Unsubscribe readers (RFC 2369, RFC 8058) do not decode. RFC 5322 allows 998 on one line.
UNFOLDED_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
ONE_LINE = default_policy.clone(max_line_length=998)


class OutboxPolicy(EmailPolicy):
    """The standard policy (email.policy.default), except that UNFOLDED_HEADERS are written on one line."""

    def fold(self, name, value):
        if name.lower() in UNFOLDED_HEADERS:
            return ONE_LINE.fold(name, value)
        return super().fold(name, value)

    def fold_binary(self, name, value):
        if name.lower() in UNFOLDED_HEADERS:
            return ONE_LINE.fold_binary(name, value)
        return super().fold_binary(name, value)


OUTBOX_POLICY = OutboxPolicy()


def queue_mail(
    session: Session,
    recipient: str,
    template: str,
    *,
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, str]] | None = None,
    order_id: int | None = None,
    **context,
) -> OutboxMessage:
    """Render `templates/mail/<template>.txt` (first line "Subject: ..."), and its .html if any, and queue them.

    `headers` are added to the mail as they are (List-Unsubscribe...); each attachment is a text file,
    `{"filename", "content_type", "content"}`, such as an .ics invitation. `order_id` names the order the mail
    is about, so the order's timeline lists it. Every template can read `shop_contact`, where buyers write to.
    """
    context.setdefault("shop_contact", shop_contact(session))
    subject, body = render_mail(template, **context)
    message = OutboxMessage(
        recipient=recipient,
        subject=subject,
        body=body,
        html_body=render_mail_html(template, subject=subject, **context),
        headers=dict(headers or {}),
        attachments=list(attachments or []),
        order_id=order_id,
        # The shop's clock (the tests' frozen one), so an order's timeline sorts its mails among its events.
        created_at=clock.now(),
    )
    session.add(message)
    session.flush()
    after_commit(session, "wake-mail-sender", wakeups.mail_queued.send)
    return message


def render_mail(template: str, **context) -> tuple[str, str]:
    """Render `templates/mail/<template>.txt` into its subject (the first line, "Subject: ...") and body."""
    # Links in mail always start from SHOP_URL, the shop's public address: mail is often queued by the worker (no
    # request) or by Stripe's webhook, whose Host is wherever the event was sent (`stripe listen`, a proxy).
    with current_app.test_request_context(base_url=current_app.config["SHOP_URL"]):
        rendered = render_template(f"mail/{template}.txt", **context)
    first_line, _, body = rendered.partition("\n")
    if not first_line.startswith("Subject: "):
        raise ValueError(f"mail/{template}.txt must start with a 'Subject: ' line")
    return first_line[len("Subject: ") :].strip(), body.lstrip()


def render_mail_html(template: str, **context) -> str:
    """Render `templates/mail/<template>.html` (autoescaped, as every .html template), or "" when there is none."""
    try:
        with current_app.test_request_context(base_url=current_app.config["SHOP_URL"]):
            return render_template(f"mail/{template}.html", **context)
    except TemplateNotFound as missing:
        if missing.name != f"mail/{template}.html":
            raise  # the template exists but includes or extends one that does not: a mistake to see, not hide
        return ""


def shop_contact(session: Session) -> str:
    """The address buyers can write to: the one the producer set in the shop's settings, else the mail's sender."""
    return shop_settings(session).contact_email.strip() or parseaddr(current_app.config["MAIL_FROM"])[1]


def producer_address() -> str:
    """Where the shop tells a person about money that needs a look; empty when none is configured."""
    return current_app.config.get("PRODUCER_EMAIL", "")


def build_email(message: OutboxMessage, sender: str) -> EmailMessage:
    email = EmailMessage(policy=OUTBOX_POLICY)
    email["From"] = sender
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = make_msgid(idstring=f"outbox-{message.id}")
    for name, value in (message.headers or {}).items():
        email[name] = value
    email.set_content(message.body, charset="utf-8")
    if message.html_body:
        email.add_alternative(message.html_body, subtype="html", charset="utf-8")
    # With an attachment, add_attachment wraps what is there (text, or text and HTML) into multipart/mixed.
    for attachment in message.attachments or []:
        maintype, subtype, params = split_content_type(attachment["content_type"])
        if maintype != "text":
            raise ValueError(f"Only text attachments can be queued, not {attachment['content_type']}")
        email.add_attachment(attachment["content"], subtype=subtype, params=params, filename=attachment["filename"])
    return email


def split_content_type(content_type: str) -> tuple[str, str, dict[str, str]]:
    """Split "text/calendar; method=PUBLISH" into ("text", "calendar", {"method": "PUBLISH"})."""
    kind, *parameters = (part.strip() for part in content_type.split(";"))
    maintype, _, subtype = kind.lower().partition("/")
    params = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip():
            params[name.strip().lower()] = value.strip().strip('"')
    return maintype, subtype, params


class Mailer:
    """Sends one EmailMessage over SMTP, or writes it to a folder."""

    def __init__(self, mail_url: str, mail_dir: str, timeout: float = 15) -> None:
        self.mail_url = mail_url
        self.mail_dir = Path(mail_dir)
        self.timeout = timeout

    def send(self, email: EmailMessage, name: str) -> None:
        if not self.mail_url:
            self.mail_dir.mkdir(parents=True, exist_ok=True)
            (self.mail_dir / f"{name}.eml").write_bytes(bytes(email))
            return
        url = urlsplit(self.mail_url)
        if url.scheme not in {"smtp", "smtps"}:
            raise ValueError(f"MAIL_URL must start with smtp:// or smtps://, got {url.scheme}://")
        smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        with smtp_class(url.hostname or "localhost", url.port or 25, timeout=self.timeout) as smtp:
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(email)


def send_pending(session: Session, mailer: Mailer, sender: str, now: datetime) -> int:
    """Send queued messages; returns how many went out.

    Each message is leased in a short transaction, sent with no transaction open (SMTP can be slow, and on SQLite
    an open write transaction would stop the shop), then marked sent. Two workers never take the same message.
    """
    sent = 0
    while sent < SEND_BATCH:
        with write_transaction(session):
            message_id = lease_next_message(session, now)
            if message_id is None:
                break
            email = build_email(session.get(OutboxMessage, message_id), sender)
        try:
            mailer.send(email, name=f"{now:%Y%m%dT%H%M%S}-{message_id}")
            error = None
        except (OSError, smtplib.SMTPException) as failure:
            log.warning("Could not send mail %s: %s", message_id, failure)
            error = str(failure)
        with write_transaction(session):
            message = session.get(OutboxMessage, message_id)
            message.attempts += 1
            message.lease_until = None
            if error is None:
                message.sent_at = now
                sent += 1
            else:
                message.last_error = error
                # Back off: the next run tries again after a minute per failed attempt.
                message.lease_until = now + timedelta(minutes=message.attempts)
        if error is not None:
            break
    return sent


def lease_next_message(session: Session, now: datetime) -> int | None:
    """Inside a write transaction: take the oldest unsent message for this worker, or None."""
    message = session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.attempts < MAX_ATTEMPTS,
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
        )
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if message is None:
        return None
    message.lease_until = now + LEASE
    session.flush()
    return message.id
