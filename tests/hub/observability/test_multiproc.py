"""Multiprocess metrics: two processes' samples merged; a dead process's gauges removed."""

import subprocess
import sys
from pathlib import Path

CHILD = """
import sys
from pathlib import Path
from hub.observability.multiproc import enable_multiprocess
enable_multiprocess(Path(sys.argv[1]))
from hub.observability.metrics import default_metrics
m = default_metrics()
m.ingest_events.labels("accepted").inc(3)
m.edge_spool_depth.labels("n1").set(7)
m.decision_log_capacity.set(100)
"""

RENDER = """
import sys
from pathlib import Path
from hub.observability.multiproc import enable_multiprocess, render_latest
enable_multiprocess(Path(sys.argv[1]))
print(render_latest()[0].decode())
"""


def run(code: str, folder: Path) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_counters_of_all_processes_are_summed_and_dead_live_gauges_dropped(
    tmp_path: Path,
) -> None:
    run(CHILD, tmp_path)
    run(CHILD, tmp_path)
    text = run(RENDER, tmp_path)
    assert 'hub_ingest_events_total{status="accepted"} 6.0' in text
    # Gauges of processes that are gone are removed: stale values would mislead.
    assert "hub_policy_decision_log_capacity 100.0" not in text
    assert not list(tmp_path.glob("gauge_*"))
    assert list(tmp_path.glob("counter_*.db"))
