"""Run Prometheus' own PromQL test files against the engine and require a high pass rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.promql.conftest import CONFORMANCE_TABLES
from tests.promql.promqltest import Runner, format_table, pass_rate

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = REPO_ROOT.parent / "shared" / "conformance" / "promql"
MIN_PASS_RATE = 0.95


@pytest.mark.parametrize("mode", ["head", "chunks"])
def test_conformance_pass_rate(mode: str, request, tmp_path: Path) -> None:
    if not CONFORMANCE_DIR.is_dir():
        pytest.skip(f"PromQL conformance files not found at {CONFORMANCE_DIR}")
    files = sorted(CONFORMANCE_DIR.glob("*.test"))
    if not files:
        pytest.skip(f"no .test files in {CONFORMANCE_DIR}")

    reports = [Runner(compact=mode == "chunks").run_file(path) for path in files]

    table = format_table(reports, f"samples in {mode} ({CONFORMANCE_DIR})")
    (tmp_path / f"conformance-{mode}.txt").write_text(table + "\n", encoding="utf-8")
    request.config.stash.setdefault(CONFORMANCE_TABLES, []).append(table)
    assert pass_rate(reports) >= MIN_PASS_RATE, table
