"""bench/drop.py runs end to end with tiny numbers and tells the truth about the drop.

The bench is a measuring tool, not a timed test: nothing here asserts a speed. It proves the bench works (it makes
its database, starts gunicorn, releases the buyers through the real reserve form, measures the bare claim SQL,
cleans up) and that the drop it ran sold every unit exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROJECT_DIR = Path(__file__).resolve().parents[2]
BENCH = PROJECT_DIR / "bench" / "drop.py"
# 60 buyers asking for 1 or 2 units each want far more than the 20 there are: every unit must go.
TINY_DROP = [
    "--units",
    "20",
    "--buyers",
    "60",
    "--concurrency",
    "8",
    "--workers",
    "2",
    "--threads",
    "4",
    "--sql-seconds",
    "1",
]
REQUIRED_KEYS = {
    "units",
    "buyers",
    "sold",
    "oversold",
    "duplicate_numbers",
    "errors",
    "reserve_rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "sql_limit_rps",
    "ratio",
    "hello_rps",
    "page_rps",
    "page_ratio",
    "time_to_sell_out_s",
    "workers",
    "threads",
    "concurrency",
    "database",
    "audit_violations",
}


def run_bench(database_url: str, *extra: str, tiny: list[str] = TINY_DROP) -> dict:
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--database-url", database_url, *tiny, *extra],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = f"stdout:\n{completed.stdout[-4000:]}\nstderr:\n{completed.stderr[-4000:]}"
    assert completed.returncode == 0, output
    lines = completed.stdout.strip().splitlines()
    assert lines, output
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        pytest.fail(f"the bench's last line is not JSON:\n{output}")


def assert_sound_drop(result: dict, database: str) -> None:
    assert result.keys() >= REQUIRED_KEYS, f"missing keys: {sorted(REQUIRED_KEYS - result.keys())}"
    assert result["database"] == database
    assert (result["units"], result["buyers"], result["concurrency"]) == (20, 60, 8)
    assert (result["workers"], result["threads"]) == (2, 4)
    assert result["oversold"] == 0
    assert result["duplicate_numbers"] == 0
    assert result["errors"] == 0
    assert result["audit_violations"] == 0
    assert result["sold"] == result["units"]
    # Every buyer got an answer (a hold or a refusal), and the figures are real measurements, whatever they are.
    assert result["reserved"] + result["refused"] == result["buyers"]
    assert result["reserve_rps"] > 0
    assert result["sql_limit_rps"] > 0
    assert result["ratio"] > 0
    # The full path: every page answered, every hold opened a Checkout Session on the (slow, like Stripe) simulator.
    assert result["stripe_latency_ms"] == 300
    assert result["sessions_created"] == result["reserved"]
    assert result["page_rps"] > 0 and result["hello_rps"] > 0 and result["page_ratio"] > 0
    # Every unit went, so the drop sold out at some moment within the POST phase.
    assert 0 < result["time_to_sell_out_s"] <= result["reserve_seconds"]


def test_bench_on_sqlite(tmp_path: Path) -> None:
    database_file = tmp_path / "drop.db"

    result = run_bench(f"sqlite:///{database_file}")

    assert_sound_drop(result, "sqlite")
    assert not database_file.exists(), "the bench leaves no database behind without --keep"


def test_a_race_is_buyers_by_units(tmp_path: Path) -> None:
    result = run_bench(
        f"sqlite:///{tmp_path / 'race.db'}",
        *["--race", "40x10", "--stripe-latency-ms", "0", "--hello-requests", "50"],
        tiny=["--concurrency", "8", "--workers", "1", "--threads", "4", "--sql-seconds", "0.5"],
    )

    assert (result["buyers"], result["units"], result["sold"]) == (40, 10, 10)
    assert result["stripe_latency_ms"] == 0 and result["thread_ceiling_rps"] is None
    assert result["sessions_created"] == result["reserved"]
    assert (result["oversold"], result["errors"], result["audit_violations"]) == (0, 0, 0)


def test_bench_on_postgresql(postgres_url: str) -> None:
    result = run_bench(postgres_url)

    assert_sound_drop(result, "postgresql")
    # Lesson 1 of ../shared/PERFORMANCE.md: after a thousand claims the real claim still walks the partial index.
    assert result["plan_uses_partial_index"] is True
