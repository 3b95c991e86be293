"""A drop through the real stack: gunicorn with 4 worker processes, the release page, its form, CSRF, PostgreSQL,
and a Checkout Session opened on the Stripe simulator for every hold.

Buyers are real HTTP clients, each with its own cookie jar: they load the release page, take the CSRF token from
the reserve form and post it, as a browser would. The clock is the real one here: the release opened a minute ago.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from config import TestConfig
from storefront import create_app
from storefront.extensions import db
from storefront.models import Hold, Unit
from tests.conftest import STRIPE_TEST_KEY, WEBHOOK_SECRET
from tests.factories import make_release
from tests.integration.helpers import free_port

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
BIN = PROJECT / ".venv" / "bin"
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*\svalue="([^"]+)"|value="([^"]+)"[^>]*\sname="csrf_token"')
CHECKOUT_PATH = re.compile(r"^/pay/(cs_test_[A-Za-z0-9_]+)$")
BUYERS, UNITS, IN_FLIGHT = 200, 100, 32


@pytest.fixture
def drop(postgres_schema_url: str) -> tuple[str, str]:
    """A schema with one release of UNITS units that went on sale a minute ago; yields (database url, slug)."""
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=postgres_schema_url)
    with app.app_context():
        db.create_all()
        release = make_release(db.session, units=UNITS, limit=3, on_sale_at=datetime.now(UTC) - timedelta(minutes=1))
        slug = release.slug
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return postgres_schema_url, slug


def server_environment(database_url: str, stripe_api_base: str = "") -> dict[str, str]:
    return {
        **os.environ,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_api_base,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test",
        "STOREFRONT_ENV": "development",
        "DATABASE_POOL_SIZE": "4",
        "DATABASE_MAX_OVERFLOW": "2",
        # Every buyer here posts from 127.0.0.1: the per-IP reserve limit is for floods, not for this crowd.
        "RESERVE_LIMIT_PER_IP": "100000/minute",
    }


def wait_until_serving(server: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or accepted by a worker that is still importing the app
        time.sleep(0.2)  # waiting for a process to boot, not for time to pass in the shop
    pytest.fail(f"gunicorn did not answer {url} within {timeout} s:\n{log.read_text()}")


class Buyer:
    """One person in a browser of their own: loads the release page early, posts the form when the drop opens."""

    def __init__(self, base_url: str, slug: str, email: str, quantity: int) -> None:
        self.base_url, self.slug, self.email, self.quantity = base_url, slug, email, quantity
        self.browser = requests.Session()
        self.csrf_token = ""

    def open_release_page(self) -> None:
        # A fresh connection for the post: gunicorn closes idle keep-alive connections after 2 s.
        page = self.browser.get(f"{self.base_url}/releases/{self.slug}", headers={"Connection": "close"}, timeout=60)
        page.raise_for_status()
        match = CSRF_INPUT.search(page.text)
        assert match, f"the release page has no reserve form with a csrf_token:\n{page.text[:3000]}"
        self.csrf_token = match.group(1) or match.group(2)

    def reserve(self) -> tuple[int, str, str]:
        """Post the reserve form; return (status, Location, the start of the body when the status is unexpected)."""
        response = self.browser.post(
            f"{self.base_url}/releases/{self.slug}/reserve",
            data={"csrf_token": self.csrf_token, "quantity": str(self.quantity), "email": self.email},
            allow_redirects=False,
            timeout=60,
        )
        body = "" if response.status_code in {303, 409} else response.text[:2000]
        return response.status_code, response.headers.get("Location", ""), body


def test_a_drop_through_gunicorn_sells_every_unit_once(drop, tmp_path, stripe_sim):
    database_url, slug = drop
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    rng = random.Random("gunicorn-drop")
    wants = [rng.randint(1, 3) for _ in range(BUYERS)]

    with log.open("w") as log_file:
        server = subprocess.Popen(
            [BIN / "gunicorn", "-w", "4", "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=PROJECT,
            env=server_environment(database_url, stripe_sim.url),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        buyers = [Buyer(base_url, slug, f"buyer{i}@example.com", want) for i, want in enumerate(wants)]
        try:
            wait_until_serving(server, f"{base_url}/releases/{slug}", log)
            with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
                # Everyone has the page open before the rush (the form only shows while units are left)...
                list(pool.map(Buyer.open_release_page, buyers))
                # ...then they all press Reserve.
                answers = list(pool.map(Buyer.reserve, buyers))
        finally:
            for buyer in buyers:
                buyer.browser.close()
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {303, 409}, [(status, body) for status, _, body in answers if status not in {303, 409}]
    sessions = {}
    for i, (status, location, _) in enumerate(answers):
        if status == 303:
            path = urlsplit(location).path
            assert location.startswith(stripe_sim.url) and CHECKOUT_PATH.match(path), location
            sessions[CHECKOUT_PATH.match(path).group(1)] = wants[i]
    assert statuses[409] > 0, "more buyers than units, yet nobody was told it sold out"

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            holds = connection.execute(sa.select(Hold.id, Hold.payment_session_id, Hold.quantity, Hold.status)).all()
            units = connection.execute(sa.select(Unit.number, Unit.status, Unit.hold_id)).all()
    finally:
        engine.dispose()
    assert {sid: quantity for _, sid, quantity, _ in holds} == sessions, "a checkout without its hold, or the reverse"
    assert {status for *_, status in holds} == {"active"}
    assert Counter(status for _, status, _ in units) == {"held": UNITS}
    assert sorted(number for number, _, _ in units) == list(range(1, UNITS + 1))
    per_hold = Counter(hold_id for *_, hold_id in units)
    assert {hold_id: quantity for hold_id, _, quantity, _ in holds} == dict(per_hold)
    assert sum(sessions.values()) == UNITS

    audit = subprocess.run(
        [BIN / "flask", "--app", "wsgi", "storefront", "audit"],
        cwd=PROJECT,
        env=server_environment(database_url, stripe_sim.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "Audit clean" in audit.stdout
