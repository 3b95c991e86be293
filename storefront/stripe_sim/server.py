"""Serve the simulator: in a thread for tests (SimulatorServer) or in the foreground for `make run` (run_simulator)."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import create_sim_app
from .simulator import Simulator


class QuietRequestHandler(WSGIRequestHandler):
    """Tests do not need a log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SimulatorServer:
    """The simulator on a free port of 127.0.0.1 in a background thread: `start()`, `.url`, `stop()`."""

    def __init__(
        self,
        *,
        webhook_secret: str,
        webhook_url: str | None = None,
        api_keys: set[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        self.app = create_sim_app(webhook_url, webhook_secret, api_keys, **options)
        self.server = make_server(host, port, self.app, threaded=True, request_handler=QuietRequestHandler)
        self.url = f"http://{host}:{self.server.server_port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="stripe-sim-http", daemon=True
        )

    @property
    def simulator(self) -> Simulator:
        return self.app.extensions["stripe_sim"]

    def start(self) -> SimulatorServer:
        self.simulator.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.simulator.close()
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(timeout=10)
        self.server.server_close()

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook delivery has been attempted to the end (held ones excepted)."""
        return self.simulator.webhooks.wait_idle(timeout)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_simulator(
    host: str,
    port: int,
    webhook_url: str | None,
    webhook_secret: str,
    api_keys: set[str] | None = None,
    public_url: str | None = None,
    business_name: str = "",
) -> None:
    """Serve the simulator until interrupted (Ctrl-C), then stop its background threads."""
    app = create_sim_app(webhook_url, webhook_secret, api_keys, public_url, business_name=business_name)
    simulator: Simulator = app.extensions["stripe_sim"]
    server = make_server(host, port, app, threaded=True)
    simulator.start()
    print(
        f"Stripe simulator (test payments only) on http://{host}:{server.server_port}; "
        f"webhooks to {webhook_url or 'nowhere (no webhook URL given)'}; test controls under /_sim",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.close()
        server.server_close()
