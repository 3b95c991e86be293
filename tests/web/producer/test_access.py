"""Every page and action under /producer/, found from the app's URL map: nobody but a producer gets through.

The routes are not listed by hand, so a page added later is covered without anyone remembering to add it here.
"""

from __future__ import annotations

import pytest
from werkzeug.routing import Rule

from tests.web.producer.conftest import csrf_token


def producer_rules(app) -> list[Rule]:
    return sorted(
        (rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/producer")),
        key=lambda rule: rule.rule,
    )


def sample_url(rule: Rule) -> str:
    """The rule's path with 1 for every argument (a record that may not exist: the guard answers first)."""
    values = {argument: 1 for argument in rule.arguments}
    path = rule.rule
    for argument in rule.arguments:
        path = path.replace(f"<int:{argument}>", "1").replace(f"<{argument}>", "1")
    assert "<" not in path, f"cannot build a sample URL for {rule.rule} {values}"
    return path


def requests_for(app):
    for rule in producer_rules(app):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, sample_url(rule)


def test_the_workspace_has_pages_and_actions(app):
    methods = {method for method, _ in requests_for(app)}
    assert {"GET", "POST"} <= methods
    assert len(list(requests_for(app))) >= 10


def test_anonymous_visitors_are_sent_to_sign_in_from_every_workspace_url(app, client):
    # With a valid CSRF token, so the answer is the sign-in guard's and not the CSRF check's 400.
    token = csrf_token(client, "/login")
    for method, url in requests_for(app):
        data = {"csrf_token": token} if method == "POST" else None
        response = client.open(url, method=method, data=data)
        assert response.status_code == 302, (method, url, response.status_code)
        location = response.headers["Location"]
        assert location.startswith("/login?next="), (method, url, location)


def test_customers_are_refused_every_workspace_url(app, customer_client):
    token = csrf_token(customer_client, "/logout")
    for method, url in requests_for(app):
        data = {"csrf_token": token} if method == "POST" else None
        response = customer_client.open(url, method=method, data=data)
        assert response.status_code == 403, (method, url, response.status_code)
        assert "for the shop&#39;s producers" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/producer/", "/producer/products", "/producer/activity", "/producer/subscribers"])
def test_a_producer_reaches_the_workspace_pages(producer_client, path):
    assert producer_client.get(path).status_code == 200


def test_the_shop_header_offers_sign_in_and_the_workspace(client, producer_user):
    home = client.get("/").get_data(as_text=True)
    assert 'href="/login"' in home and "Workspace" not in home
    from tests.web.producer.conftest import PRODUCER_EMAIL, sign_in

    sign_in(client, PRODUCER_EMAIL)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/producer/"' in home and 'href="/logout"' in home and 'href="/login"' not in home
