"""Fixtures for the integration tests."""

from collections.abc import Iterator

import pytest

from tests.integration.smtp import SmtpServer


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()
