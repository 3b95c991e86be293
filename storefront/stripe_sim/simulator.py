"""The simulator's memory and rules: sessions, payments, refunds, events, idempotency and injected faults."""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from . import objects, validation
from .errors import StripeError, no_such
from .webhooks import WebhookDispatcher

API_VERSION = "2026-10-28.endive"
API_KEY = re.compile(r"^(sk|rk)_test_\S+$")
NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer "
    "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
    "details, or we can help at https://support.stripe.com/."
)
IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a "
    "key other than '{key}' if you meant to execute a different request."
)
IDEMPOTENCY_OTHER_ENDPOINT = (
    "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{first}' vs "
    "'{now}'). Try using a key other than '{key}' if you meant to execute a different request."
)
IDEMPOTENCY_IN_USE = (
    "There is currently another in-progress request using this idempotent key (that probably means you submitted "
    "twice, and the other request is still going through): {key}. Please try again later."
)
KINDS = {
    "cs_": ("checkout.session", "sessions"),
    "pi_": ("payment_intent", "payment_intents"),
    "ch_": ("charge", "charges"),
    "re_": ("refund", "refunds"),
    "evt_": ("event", "events"),
}
EXPANDABLE = {
    "checkout.session": {"payment_intent", "line_items"},
    "payment_intent": {"latest_charge"},
    "charge": {"payment_intent"},
    "refund": {"charge", "payment_intent"},
}


@dataclasses.dataclass
class RequestContext:
    """Who asked: the request id and idempotency key that events caused by an API call carry."""

    request_id: str | None = None
    idempotency_key: str | None = None


NO_REQUEST = RequestContext()


@dataclasses.dataclass
class StoredResponse:
    endpoint: str
    params: dict[str, Any]
    status: int | None = None
    body: str | None = None
    request_id: str | None = None


@dataclasses.dataclass
class Fault:
    """An injected failure: wait `delay_seconds`, then answer `status` (or carry on normally when it is None)."""

    method: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    status: int | None = None
    delay_seconds: float = 0.0
    count: int | None = 1
    error: dict[str, Any] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path is not None and self.path != path:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def failure(self) -> StripeError | None:
        if self.status is None:
            return None
        error = dict(self.error or {})
        return StripeError(
            self.status,
            error.pop("message", None),
            param=error.pop("param", None),
            code=error.pop("code", None),
            error_type=error.pop("type", None),
            **error,
        )


class SessionUnavailable(StripeError):
    """The hosted page cannot take a payment for a session that is expired or already complete."""

    def __init__(self, session: dict[str, Any]) -> None:
        self.session = session
        super().__init__(
            409,
            f"This Checkout Session is no longer available: its status is `{session['status']}`.",
            param="session",
            code="checkout_session_unavailable",
        )


class Simulator:
    """All state of one simulated Stripe account, guarded by one lock."""

    def __init__(
        self,
        webhook_url: str | None,
        webhook_secret: str,
        *,
        api_keys: set[str] | None = None,
        public_url: str | None = None,
        api_version: str = API_VERSION,
        clock: Callable[[], float] = time.time,
        expiry_interval: float = 0.5,
    ) -> None:
        self.api_keys = set(api_keys) if api_keys else None
        self.public_url = public_url.rstrip("/") if public_url else None
        self.api_version = api_version
        self.clock = clock
        self.expiry_interval = expiry_interval
        self.lock = threading.RLock()
        self.webhooks = WebhookDispatcher(webhook_url, webhook_secret)
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: objects, events, idempotency keys, faults, webhook settings and the clock offset."""
        with self.lock:
            self.clock_offset = 0.0
            self.sessions: dict[str, dict[str, Any]] = {}
            self.line_items: dict[str, list[dict[str, Any]]] = {}
            self.intent_data: dict[str, dict[str, Any]] = {}
            self.shipping_rates: dict[str, dict[str, Any]] = {}
            self.payment_intents: dict[str, dict[str, Any]] = {}
            self.charges: dict[str, dict[str, Any]] = {}
            self.refunds: dict[str, dict[str, Any]] = {}
            self.events: dict[str, dict[str, Any]] = {}
            self.idempotency: dict[tuple[str, str], StoredResponse] = {}
            self.faults: list[Fault] = []
            self.webhooks.reset()

    def start(self) -> None:
        """Start the webhook sender and the expiry sweeper (idempotent; also done on the first request)."""
        with self.lock:
            if self._ticker is not None or self._stopping.is_set():
                return
            self.webhooks.start()
            self._ticker = threading.Thread(target=self._sweep_expired, name="stripe-sim-expiry", daemon=True)
            self._ticker.start()

    def close(self) -> None:
        """Stop the background threads and wake any request sleeping in an injected delay."""
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self.webhooks.stop()

    def _sweep_expired(self) -> None:
        while not self._stopping.wait(self.expiry_interval):
            self.expire_due_sessions()

    def pause(self, seconds: float) -> None:
        """Sleep for an injected delay, but wake at once when the simulator shuts down."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def now(self) -> int:
        return int(self.clock() + self.clock_offset)

    def advance_clock(self, seconds: float) -> int:
        """Move simulated time forward (sessions past `expires_at` expire at once) and return the new now."""
        with self.lock:
            self.clock_offset += seconds
        self.expire_due_sessions()
        return self.now()

    # --- authentication, idempotency, faults ---------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> str:
        """Return the secret key from a Bearer (or Basic, as curl -u sends) Authorization header."""
        key = ""
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer":
                key = credentials.strip()
            elif scheme.lower() == "basic":
                try:
                    key = base64.b64decode(credentials).decode().partition(":")[0]
                except (binascii.Error, UnicodeDecodeError):
                    key = ""
        if not key:
            raise StripeError(401, NO_KEY_MESSAGE)
        allowed = key in self.api_keys if self.api_keys is not None else bool(API_KEY.match(key))
        if not allowed:
            raise StripeError(401, f"Invalid API Key provided: {mask_key(key)}")
        return key

    def begin_idempotent(self, scope: str, key: str, endpoint: str, params: dict[str, Any]) -> StoredResponse | None:
        """Return the stored response for a replay, or None after reserving the key for this request."""
        with self.lock:
            stored = self.idempotency.get((scope, key))
            if stored is None:
                self.idempotency[(scope, key)] = StoredResponse(endpoint, params)
                return None
            if stored.endpoint != endpoint:
                message = IDEMPOTENCY_OTHER_ENDPOINT.format(first=stored.endpoint, now=endpoint, key=key)
                raise StripeError(400, message, error_type="idempotency_error")
            if stored.params != params:
                raise StripeError(400, IDEMPOTENCY_MISMATCH.format(key=key), error_type="idempotency_error")
            if stored.status is None:
                raise StripeError(
                    409,
                    IDEMPOTENCY_IN_USE.format(key=key),
                    code="idempotency_key_in_use",
                    error_type="invalid_request_error",
                )
            return stored

    def finish_idempotent(self, scope: str, key: str, status: int, body: str | None, request_id: str) -> None:
        """Keep the response for replays, or release the key when the request failed before doing anything."""
        with self.lock:
            if body is None:
                self.idempotency.pop((scope, key), None)
                return
            stored = self.idempotency[(scope, key)]
            stored.status, stored.body, stored.request_id = status, body, request_id

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        """Inject a failure for matching requests (see Fault); used by POST /_sim/faults."""
        fault = Fault(**spec)
        if fault.status is None and not fault.delay_seconds:
            raise StripeError(400, "A fault needs a status, a delay_seconds, or both.", param="status")
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, used up by one if it has a count."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    # --- Checkout Sessions -----------------------------------------------------------------------------------

    def create_session(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        now = self.now()
        clean = validation.checkout_session(params, now)
        session_id = objects.new_id("cs_test_a1", 56)
        items = [
            objects.line_item(created=now, price_data=item["price_data"], quantity=item["quantity"])
            for item in clean["line_items"]
        ]
        session = objects.checkout_session(
            session_id=session_id,
            created=now,
            params=clean,
            amount_subtotal=clean["amount_subtotal"],
            currency=clean["currency"],
            url=f"{self.public_url or base_url.rstrip('/')}/pay/{session_id}",
        )
        rates = [objects.shipping_rate(created=now, rate_data=option) for option in clean["shipping_options"]]
        if rates:
            objects.charge_shipping(session, rates)
        with self.lock:
            self.sessions[session_id] = session
            self.line_items[session_id] = items
            self.intent_data[session_id] = clean["payment_intent_data"]
            self.shipping_rates.update((rate["id"], rate) for rate in rates)
            try:
                return self.render(session, clean["expand"])
            except StripeError:
                # A bad `expand` is a refused request: nothing may be left behind.
                del self.sessions[session_id], self.line_items[session_id], self.intent_data[session_id]
                for rate in rates:
                    del self.shipping_rates[rate["id"]]
                raise

    def session(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            if session_id not in self.sessions:
                raise no_such("checkout.session", session_id, "session")
            return self.sessions[session_id]

    def session_line_items(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.session(session_id)
            items = [copy.deepcopy(item) for item in self.line_items[session_id]]
            url = f"/v1/checkout/sessions/{session_id}/line_items"
            return paginate(items, params, url)

    def list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            sessions = list(reversed(self.sessions.values()))
            for field in ("status", "payment_intent", "client_reference_id"):
                if params.get(field):
                    sessions = [session for session in sessions if session[field] == params[field]]
            listed = paginate([copy.deepcopy(session) for session in sessions], params, "/v1/checkout/sessions")
            listed["data"] = [self.render(session, expand_inside_list(params)) for session in listed["data"]]
            return listed

    def expire_session(self, session_id: str, context: RequestContext) -> dict[str, Any]:
        with self.lock:
            session = self.session(session_id)
            if session["status"] != "open":
                raise StripeError(
                    400,
                    'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a '
                    f"status of `{session['status']}`.",
                )
            self._expire(session, context)
            return session

    def expire_by_time(self, session_id: str) -> dict[str, Any]:
        """As if `expires_at` had passed: Stripe's own expiry, with no request behind the event."""
        with self.lock:
            session = self.session(session_id)
            if session["status"] != "open":
                raise SessionUnavailable(session)
            session["expires_at"] = min(session["expires_at"], self.now())
            self._expire(session, NO_REQUEST)
            return session

    def expire_due_sessions(self) -> list[str]:
        with self.lock:
            now = self.now()
            due = [s for s in self.sessions.values() if s["status"] == "open" and s["expires_at"] <= now]
            for session in due:
                self._expire(session, NO_REQUEST)
            return [session["id"] for session in due]

    def _expire(self, session: dict[str, Any], context: RequestContext) -> None:
        session.update(status="expired", url=None)
        self.emit("checkout.session.expired", session, context)

    def open_session(self, session_id: str) -> dict[str, Any]:
        """The session a buyer is paying for, or SessionUnavailable once it is expired or complete."""
        with self.lock:
            session = self.session(session_id)
            if session["status"] == "open" and session["expires_at"] <= self.now():
                self._expire(session, NO_REQUEST)
            if session["status"] != "open":
                raise SessionUnavailable(session)
            return session

    def default_buyer(self, session: dict[str, Any]) -> dict[str, Any]:
        """What the test-control pay endpoint fills in when the caller gives no details."""
        allowed = (session["shipping_address_collection"] or {}).get("allowed_countries") or ["IE"]
        return {
            "email": session["customer_email"] or "buyer@example.com",
            "name": "Test Buyer",
            "address": {"line1": "1 Test Street", "city": "Dublin", "postal_code": "D02 X285", "country": allowed[0]},
        }

    def pay_session(self, session_id: str, buyer: dict[str, Any]) -> dict[str, Any]:
        """Complete a session with a successful test card payment, as the hosted page's Pay button does."""
        with self.lock:
            session = self.open_session(session_id)
            allowed = (session["shipping_address_collection"] or {}).get("allowed_countries")
            errors = validation.buyer_details(buyer, allowed)
            if errors:
                field, message = next(iter(errors.items()))
                raise StripeError(400, message, param=field, field_errors=errors)
            now = self.now()
            address = objects.full_address({k: (v or "").strip() for k, v in buyer["address"].items()})
            email, name = buyer["email"].strip(), buyer["name"].strip()
            shipping = {"address": address, "name": name} if session["shipping_address_collection"] else None
            intent_id, charge_id = objects.new_id("pi_3", 23), objects.new_id("ch_3", 23)
            intent = objects.payment_intent(
                intent_id=intent_id,
                created=now,
                amount=session["amount_total"],
                currency=session["currency"],
                charge_id=charge_id,
                payment_method=objects.new_id("pm_1", 23),
                intent_data=self.intent_data.get(session_id, {}),
                shipping={**shipping, "carrier": None, "phone": None, "tracking_number": None} if shipping else None,
            )
            paid = objects.charge(
                charge_id=charge_id,
                created=now,
                intent=intent,
                billing_details={"address": address, "email": email, "name": name, "phone": None, "tax_id": None},
                receipt_url=f"{session_url_base(session)}/receipts/{charge_id}",
            )
            self.payment_intents[intent_id] = intent
            self.charges[charge_id] = paid
            session.update(
                status="complete",
                payment_status="paid",
                payment_intent=intent_id,
                url=None,
                customer_details={
                    "address": address,
                    "business_name": None,
                    "email": email,
                    "individual_name": None,
                    "name": name,
                    "phone": None,
                    "tax_exempt": "none",
                    "tax_ids": [],
                },
                collected_information={"business_name": None, "individual_name": None, "shipping_details": shipping},
            )
            created = {**intent, "status": "requires_payment_method", "amount_received": 0, "latest_charge": None}
            self.emit("payment_intent.created", created, NO_REQUEST)
            self.emit("charge.succeeded", paid, NO_REQUEST)
            self.emit("payment_intent.succeeded", intent, NO_REQUEST)
            self.emit("checkout.session.completed", session, NO_REQUEST)
            return session

    # --- PaymentIntents, Charges, Refunds, Events ---------------------------------------------------------------

    def find(self, object_id: str, kind: str | None = None, param: str = "id", status: int = 404) -> dict[str, Any]:
        """Look an object up by id; `kind` insists on one type ("payment_intent", "charge", ...)."""
        with self.lock:
            for prefix, (name, store) in KINDS.items():
                if object_id.startswith(prefix) and (kind is None or kind == name):
                    found = getattr(self, store).get(object_id)
                    if found is not None:
                        return found
            raise no_such(kind or "object", object_id, param, status)

    def create_refund(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        clean = validation.refund(params)
        with self.lock:
            charge = self._refundable_charge(clean)
            remaining = charge["amount"] - charge["amount_refunded"]
            if remaining <= 0:
                raise StripeError(
                    400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
                )
            amount = clean["amount"] if clean["amount"] is not None else remaining
            if amount > remaining:
                currency = charge["currency"]
                raise StripeError(
                    400,
                    f"Refund amount ({objects.format_money(amount, currency)}) is greater than unrefunded amount on "
                    f"charge ({objects.format_money(remaining, currency)})",
                    param="amount",
                    code="amount_too_large",
                )
            refund_id = objects.new_id("re_3", 23)
            refund = objects.refund(
                refund_id=refund_id, created=self.now(), paid_charge=charge, amount=amount, params=clean
            )
            self.refunds[refund_id] = refund
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
            self.emit("charge.refunded", charge, context)
            self.emit("refund.created", refund, context)
            return self.render(refund, clean["expand"])

    def _refundable_charge(self, clean: dict[str, Any]) -> dict[str, Any]:
        if clean["payment_intent"]:
            intent = self.find(clean["payment_intent"], "payment_intent", "payment_intent", status=400)
            if intent["status"] != "succeeded" or not intent["latest_charge"]:
                raise StripeError(
                    400,
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                    param="payment_intent",
                    code="charge_not_refundable",
                )
            charge = self.charges[intent["latest_charge"]]
            if clean["charge"] and clean["charge"] != charge["id"]:
                raise StripeError(400, f"Charge {clean['charge']} does not belong to {intent['id']}.", param="charge")
            return charge
        return self.find(clean["charge"], "charge", "charge", status=400)

    def list_events(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            events = list(reversed(self.events.values()))
            if params.get("type"):
                wanted = params["type"]
                events = [
                    e
                    for e in events
                    if e["type"] == wanted or (wanted.endswith("*") and e["type"].startswith(wanted[:-1]))
                ]
            return paginate([copy.deepcopy(event) for event in events], params, "/v1/events")

    def emit(self, event_type: str, data_object: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Record an event holding a snapshot of `data_object` and hand it to the webhook sender."""
        with self.lock:
            event = objects.event(
                event_id=objects.new_id("evt_1", 23),
                created=self.now(),
                event_type=event_type,
                data_object=copy.deepcopy(data_object),
                api_version=self.api_version,
                pending_webhooks=1 if self.webhooks.will_deliver(event_type) else 0,
                request_id=context.request_id,
                idempotency_key=context.idempotency_key,
            )
            self.events[event["id"]] = event
            self.webhooks.publish(event["id"], event_type, json.dumps(event, indent=2))
            return event

    def event_log(self) -> list[dict[str, Any]]:
        """Every event in the order it happened, with its webhook delivery status and attempts."""
        with self.lock:
            events = [copy.deepcopy(event) for event in self.events.values()]
        return [{"event": event, **self.webhooks.log(event["id"])} for event in events]

    # --- expansion -------------------------------------------------------------------------------------------

    def render(self, obj: dict[str, Any], expand: list[str] | None = None) -> dict[str, Any]:
        """A copy of `obj` for a response, with `expand[]` paths replaced by the objects they name."""
        with self.lock:
            rendered = copy.deepcopy(obj)
            for path in expand or []:
                self._expand(rendered, path.split("."), path)
            return rendered

    def _expand(self, obj: dict[str, Any], parts: list[str], path: str) -> None:
        head, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and head == "data":
            for item in obj["data"]:
                if rest:
                    self._expand(item, rest, path)
            return
        if head not in EXPANDABLE.get(obj.get("object", ""), set()):
            raise StripeError(400, f"This property cannot be expanded ({head}).", param="expand")
        if head == "line_items" and obj["object"] == "checkout.session":
            obj[head] = paginate(
                copy.deepcopy(self.line_items[obj["id"]]), {}, f"/v1/checkout/sessions/{obj['id']}/line_items"
            )
        elif isinstance(obj.get(head), str):
            obj[head] = copy.deepcopy(self.find(obj[head]))
        if rest and isinstance(obj.get(head), dict):
            self._expand(obj[head], rest, path)


def session_url_base(session: dict[str, Any]) -> str:
    return (session["url"] or "").rsplit("/pay/", 1)[0]


def mask_key(key: str) -> str:
    prefix = key[:8] if key.startswith(("sk_test_", "rk_test_")) else key[:3]
    return prefix + "*" * max(0, len(key) - len(prefix) - 4) + key[-4:]


def expand_inside_list(params: dict[str, Any]) -> list[str]:
    """`expand[]=data.payment_intent` on a list applies `payment_intent` to each item."""
    paths = validation.expand_paths(params)
    for path in paths:
        if not path.startswith("data."):
            raise StripeError(400, f"This property cannot be expanded ({path.split('.')[0]}).", param="expand")
    return [path.removeprefix("data.") for path in paths]


def paginate(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """Stripe's cursor pagination over newest-first `items`: limit, starting_after, ending_before."""
    limit = validation.as_integer(params, "limit", "limit", minimum=1)
    limit = min(limit or 10, 100)
    ids = [item.get("id") for item in items]
    if params.get("starting_after"):
        cursor = params["starting_after"]
        if cursor not in ids:
            raise no_such("object", cursor, "starting_after", status=400)
        items = items[ids.index(cursor) + 1 :]
    elif params.get("ending_before"):
        cursor = params["ending_before"]
        if cursor not in ids:
            raise no_such("object", cursor, "ending_before", status=400)
        before = items[: ids.index(cursor)]
        return objects.list_object(before[-limit:], url, has_more=len(before) > limit)
    return objects.list_object(items[:limit], url, has_more=len(items) > limit)
