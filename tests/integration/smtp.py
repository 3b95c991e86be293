"""A real SMTP server in-process (aiosmtpd) that records what the shop sends."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.integration.helpers import free_port

# The shop's public address in mail tests: links in mail must start here, never at the request's own host.
SHOP_URL = "https://smallbatch.example"


@dataclass
class Delivery:
    """One message as the SMTP server received it: the envelope and the parsed message."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        """The plain-text part, whether the message is multipart (attachments, HTML) or not."""
        # SMTP carries lines ending in CRLF
        return self.message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")

    @property
    def body(self) -> str:
        """The plain-text body (order mail also carries an HTML part: see `html`)."""
        return self.text

    @property
    def html(self) -> str:
        """The HTML part, or "" for a text-only mail."""
        part = self.message.get_body(preferencelist=("html",))
        return "" if part is None else part.get_content().replace("\r\n", "\n")


class SmtpServer:
    """A real SMTP server on 127.0.0.1 (aiosmtpd in a thread of its own) that keeps what it receives.

    `stop()` and `start()` again on the same port play a mail server that goes down and comes back.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's handler hook name
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self.deliveries.append(Delivery(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpServer:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def mails_to(self, address: str, count: int = 1, timeout: float = 10) -> list[Delivery]:
        """What `address` has received, once there are `count` messages (another thread sends them) or time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            received = [delivery for delivery in self.received() if delivery.recipients == [address]]
            if len(received) >= count or time.monotonic() > deadline:
                return received
            time.sleep(0.1)  # waiting on the request thread that sends it, not on shop time
