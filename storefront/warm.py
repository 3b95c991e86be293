"""What a server process does once when it starts, so that the first burst of a drop does not do it once per thread.

Jinja compiles a template the first time a page asks for it, and some libraries import their modules on first use
(the Stripe SDK its object classes and services, WTForms the email validator). Done lazily, that work lands on the
first requests, and on every thread that meets it at the same moment: a worker whose first reserve POSTs arrive
at 10:00 compiles the "sold out" page once in each of its threads while the buyers wait (the profile in
bench/profile-2026-11-30.md found a fifth of the reserve path's CPU there). `gunicorn.conf.py` calls `warm_up` in
each worker before it takes a request; it reads no database and calls no network service.
"""

from __future__ import annotations

import gc
import logging
import time

from flask import Flask

log = logging.getLogger(__name__)

TEMPLATE_SUFFIXES = (".html", ".txt", ".xml", ".ics")
# The Stripe objects and services the shop touches (storefront/payments.py): imported by the SDK on first use.
STRIPE_OBJECTS = ("checkout.Session", "Refund", "Event", "PaymentIntent", "Charge", "ListObject")


def warm_up(app: Flask) -> float:
    """Compile every template, import what is imported lazily, build the payment gateway; return the seconds it took."""
    started = time.perf_counter()
    environment = app.jinja_env
    for name in environment.list_templates(filter_func=lambda name: name.endswith(TEMPLATE_SUFFIXES)):
        environment.get_template(name)
    import email_validator  # noqa: F401 - WTForms' Email validator imports it on first use
    import stripe

    for dotted in STRIPE_OBJECTS:
        target = stripe
        for part in dotted.split("."):
            target = getattr(target, part)
    if app.config.get("STRIPE_SECRET_KEY"):
        from storefront.payments import gateway

        payments = gateway(app)
        for client in (payments.client, payments.checkout_client):
            # Each service is built on first attribute access.
            client.v1.checkout.sessions  # noqa: B018
            client.v1.refunds  # noqa: B018
    # Everything loaded so far lives as long as the worker: out of the collector's sight, a full collection walks
    # only what requests made since, not the whole app again each time (gc.freeze).
    gc.collect()
    gc.freeze()
    seconds = time.perf_counter() - started
    log.info("warmed up in %.2f s (%d templates)", seconds, len(environment.cache or {}))
    return seconds
