"""`make run`'s server: the shop, a task worker, and (without real Stripe keys) the Stripe simulator."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import config as settings
from storefront.demo import DEMO_PRODUCER_EMAIL, DEMO_PRODUCER_PASSWORD

SIMULATOR_KEY = "sk_test_simulator"


def simulator_webhook_secret() -> str:
    """A webhook secret kept in instance/, so the simulator and the shop agree across restarts."""
    path = settings.INSTANCE_DIR / "simulator_webhook_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("whsec_" + secrets.token_hex(24))
    return path.read_text().strip()


def flask_command() -> list[str]:
    """This environment's `flask` executable (or `python -m flask` where there is none)."""
    executable = Path(sys.executable).with_name("flask")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "flask"]


def simulator_command(port: int, webhook_url: str, webhook_secret: str, api_key: str | None = None) -> list[str]:
    """The command that serves the Stripe simulator on 127.0.0.1:`port`, sending webhooks to `webhook_url`."""
    command = [*flask_command(), "--app", "wsgi", "storefront", "stripe-sim", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
    return command + (["--api-key", api_key] if api_key else [])


def stop_on_sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run_dev(host: str, port: int, sim_port: int) -> int:
    flask = flask_command()
    env = dict(os.environ)
    env.setdefault("SHOP_URL", f"http://{host}:{port}")
    commands: list[tuple[str, list[str]]] = []
    if not env.get("STRIPE_SECRET_KEY"):
        secret = simulator_webhook_secret()
        env.update(
            STRIPE_SECRET_KEY=SIMULATOR_KEY,
            STRIPE_WEBHOOK_SECRET=secret,
            STRIPE_API_BASE=f"http://127.0.0.1:{sim_port}",
        )
        webhook_url = f"http://{host}:{port}/stripe/webhook"
        commands.append(("stripe simulator", simulator_command(sim_port, webhook_url, secret)))
        print(f"No STRIPE_SECRET_KEY: test payments go to the Stripe simulator on http://127.0.0.1:{sim_port}")
    commands.append(("worker", [*flask, "--app", "wsgi", "storefront", "worker"]))
    commands.append(("web", [*flask, "--app", "wsgi", "run", "--host", host, "--port", str(port)]))

    # Stopped by a service manager or `timeout` (SIGTERM) as by Ctrl-C: the children go down with us.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    processes = [(name, subprocess.Popen(command, env=env)) for name, command in commands]
    print(f"Small Batch is on http://{host}:{port}  (Ctrl-C stops the shop, the worker and the simulator)")
    print(
        f"Producer workspace: http://{host}:{port}/producer/  sign in as {DEMO_PRODUCER_EMAIL}"
        f" / {DEMO_PRODUCER_PASSWORD} (the demo account seed-demo made)"
    )
    try:
        while True:
            for name, process in processes:
                if process.poll() is not None:
                    print(f"{name} stopped (exit {process.returncode}); stopping the rest.")
                    return process.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        for _name, process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for _name, process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
