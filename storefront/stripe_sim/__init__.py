"""A Stripe-compatible HTTP simulator for offline development and tests (test payments only).

Serves the subset of Stripe's API the shop uses (Checkout Sessions, PaymentIntents, Charges, Refunds, Events) with
Stripe's conventions, a hosted payment page, Stripe-signed webhooks, and test controls under /_sim.
"""

from .app import create_sim_app
from .server import SimulatorServer, run_simulator
from .simulator import API_VERSION, Simulator
from .webhooks import sign_payload

__all__ = ["API_VERSION", "Simulator", "SimulatorServer", "create_sim_app", "run_simulator", "sign_payload"]
