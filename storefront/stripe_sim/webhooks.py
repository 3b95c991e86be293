"""Sign and deliver webhook events the way Stripe does, with knobs for latency, failures, duplicates and holds."""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import hmac
import http.client
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

# Stripe retries for days; a test double retries within seconds: 8 attempts in all, about 24 s end to end.
DEFAULT_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0)
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign_payload(payload: str, secret: str, timestamp: int) -> str:
    """Return the `Stripe-Signature` header value for `payload`: `t=<timestamp>,v1=<hex HMAC-SHA256>`."""
    signed = f"{timestamp}.{payload}".encode()
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


@dataclasses.dataclass
class WebhookSettings:
    """The endpoint and how unreliably the simulator should treat it (see POST /_sim/webhooks)."""

    url: str | None
    secret: str
    latency_seconds: float = 0.0
    fail_first: int = 0
    duplicates: int = 1
    hold: bool = False
    enabled_events: list[str] = dataclasses.field(default_factory=lambda: ["*"])
    retry_delays: list[float] = dataclasses.field(default_factory=lambda: list(DEFAULT_RETRY_DELAYS))
    timeout_seconds: float = 10.0

    def public(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self)
        settings["secret"] = f"{self.secret[:10]}…" if self.secret else None
        return settings


@dataclasses.dataclass(order=True)
class Delivery:
    due: float
    sequence: int
    event_id: str = dataclasses.field(compare=False)
    copy: int = dataclasses.field(compare=False)
    attempt: int = dataclasses.field(default=1, compare=False)


@dataclasses.dataclass
class DeliveryLog:
    event_id: str
    event_type: str
    payload: str
    copies: int = 0
    outstanding: int = 0
    held: bool = False
    succeeded: int = 0
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> str:
        if self.held:
            return "held"
        if self.outstanding:
            return "pending"
        if self.succeeded:
            return "delivered"
        return "failed" if self.attempts else "not_sent"

    def public(self) -> dict[str, Any]:
        return {"status": self.status, "copies": self.copies, "delivered": self.succeeded, "attempts": self.attempts}


class WebhookDispatcher:
    """Queues signed deliveries and sends them from one background thread, retrying with backoff."""

    def __init__(self, url: str | None, secret: str, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._initial = (url, secret)
        self._wall_clock = wall_clock
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._sequence = 0
        self._in_flight = 0
        self._generation = 0
        self._reset_locked()

    # --- configuration -----------------------------------------------------------------------------------------

    def _reset_locked(self) -> None:
        self.settings = WebhookSettings(*self._initial)
        self._queue: list[Delivery] = []
        self._held: list[str] = []
        self._logs: dict[str, DeliveryLog] = {}
        self._fail_remaining = 0
        self._generation += 1

    def reset(self) -> None:
        """Forget every event, queued delivery and setting (in-flight attempts finish but are not recorded)."""
        with self._condition:
            self._reset_locked()
            self._condition.notify_all()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply settings from POST /_sim/webhooks; turning `hold` off releases held events in order."""
        fields = {field.name for field in dataclasses.fields(WebhookSettings)}
        unknown = set(changes) - fields
        if unknown:
            raise ValueError(f"unknown webhook settings: {', '.join(sorted(unknown))}")
        with self._condition:
            release = self.settings.hold and changes.get("hold") is False
            for name, value in changes.items():
                setattr(self.settings, name, value)
            if "fail_first" in changes:
                self._fail_remaining = int(changes["fail_first"])
            if release:
                self._flush_locked(list(self._held))
            self._condition.notify_all()
            return self.settings.public()

    def public_settings(self) -> dict[str, Any]:
        with self._condition:
            return {**self.settings.public(), "fail_remaining": self._fail_remaining, "held": list(self._held)}

    def will_deliver(self, event_type: str) -> bool:
        with self._condition:
            enabled = self.settings.enabled_events
            return bool(self.settings.url) and ("*" in enabled or event_type in enabled)

    # --- queueing ------------------------------------------------------------------------------------------------

    def publish(self, event_id: str, event_type: str, payload: str) -> None:
        """Record an event and queue it (or hold it) for every configured copy."""
        with self._condition:
            log = self._logs[event_id] = DeliveryLog(event_id, event_type, payload)
            if not (self.settings.url and self.will_deliver(event_type)):
                return
            log.copies = max(1, int(self.settings.duplicates))
            if self.settings.hold:
                log.held = True
                self._held.append(event_id)
                return
            self._enqueue_copies(log, range(log.copies), self.settings.latency_seconds)

    def _enqueue_copies(self, log: DeliveryLog, copies: Iterable[int], delay: float) -> None:
        for copy in copies:
            self._sequence += 1
            log.outstanding += 1
            heapq.heappush(self._queue, Delivery(time.monotonic() + delay, self._sequence, log.event_id, copy))
        self._condition.notify_all()

    def flush(self, order: str = "original", event_ids: list[str] | None = None) -> list[str]:
        """Send held events: all of them (in `order`: "original" or "reverse") or exactly `event_ids`, in that order."""
        with self._condition:
            if event_ids is None:
                event_ids = list(reversed(self._held)) if order == "reverse" else list(self._held)
            missing = [event_id for event_id in event_ids if event_id not in self._held]
            if missing:
                raise KeyError(", ".join(missing))
            self._flush_locked(event_ids)
            return event_ids

    def _flush_locked(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self._held.remove(event_id)
            log = self._logs[event_id]
            log.held = False
            self._enqueue_copies(log, range(log.copies), self.settings.latency_seconds)

    def resend(self, event_id: str) -> dict[str, Any]:
        """Queue one more copy of an event at once, like "Resend" in Stripe's dashboard."""
        with self._condition:
            log = self._logs[event_id]
            log.copies += 1
            self._enqueue_copies(log, [log.copies - 1], 0.0)
            return log.public()

    def log(self, event_id: str) -> dict[str, Any]:
        with self._condition:
            log = self._logs.get(event_id)
            return log.public() if log else DeliveryLog(event_id, "", "").public()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or being sent (held events do not count); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    # --- the delivery thread -------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._condition:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="stripe-sim-webhooks", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self.settings.timeout_seconds + 5)

    def _next_due(self) -> Delivery | None:
        with self._condition:
            while not self._stopping:
                if self._queue and self._queue[0].due <= time.monotonic():
                    self._in_flight += 1
                    return heapq.heappop(self._queue)
                timeout = self._queue[0].due - time.monotonic() if self._queue else None
                self._condition.wait(timeout)
            return None

    def _run(self) -> None:
        while (delivery := self._next_due()) is not None:
            try:
                self._attempt(delivery)
            finally:
                with self._condition:
                    self._in_flight -= 1
                    self._condition.notify_all()

    def _attempt(self, delivery: Delivery) -> None:
        with self._condition:
            generation = self._generation
            log = self._logs.get(delivery.event_id)
            if log is None:
                return
            settings = dataclasses.replace(self.settings)
            simulate_failure = self._fail_remaining > 0
            if simulate_failure:
                self._fail_remaining -= 1
        started = self._wall_clock()
        if simulate_failure:
            status, error = 500, "simulated endpoint failure (fail_first)"
        elif not settings.url:
            status, error = None, "no webhook endpoint configured"
        else:
            status, error = self._post(settings, log.payload)
        ok = status is not None and 200 <= status < 300
        with self._condition:
            if generation != self._generation:
                return
            log.attempts.append(
                {
                    "copy": delivery.copy,
                    "attempt": delivery.attempt,
                    "at": started,
                    "status": status,
                    "error": error,
                    "ok": ok,
                }
            )
            if ok:
                log.succeeded += 1
                log.outstanding -= 1
            elif delivery.attempt <= len(settings.retry_delays):
                delay = settings.retry_delays[delivery.attempt - 1]
                self._sequence += 1
                retry_at = time.monotonic() + delay
                retry = Delivery(retry_at, self._sequence, delivery.event_id, delivery.copy, delivery.attempt + 1)
                heapq.heappush(self._queue, retry)
            else:
                log.outstanding -= 1
                logger.warning("Giving up on %s after %d attempts", delivery.event_id, delivery.attempt)

    def _post(self, settings: WebhookSettings, payload: str) -> tuple[int | None, str | None]:
        """POST the event; redirects count as failures, as they do for Stripe."""
        target = urlsplit(settings.url or "")
        connection_class = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        body = payload.encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign_payload(payload, settings.secret, int(self._wall_clock())),
        }
        connection = connection_class(target.netloc, timeout=settings.timeout_seconds)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status, None
        except (OSError, http.client.HTTPException) as error:
            return None, f"{type(error).__name__}: {error}"
        finally:
            connection.close()
