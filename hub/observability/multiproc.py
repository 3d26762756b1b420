"""Prometheus multiprocess mode: every API and worker process of one hub writes its samples
to files in one folder, and `/metrics` (in any API process) merges them.

The hub sets `PROMETHEUS_MULTIPROC_DIR` itself from `HUB_METRICS_DIR` in `hub api` and
`hub worker` before any collector exists. Gauges of processes that are gone are removed
(their values are stale); counters and histograms of dead processes are kept, so totals
never go backwards while the folder lives. Give each host (container) its own folder and
empty it at boot (a tmpfs or systemd `RuntimeDirectory=`), as prometheus-client advises.
"""

import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    values,
)

from hub.observability.pids import pid_exists

ENV = "PROMETHEUS_MULTIPROC_DIR"
_GAUGE_FILE = re.compile(r"^gauge_[a-z]+_(\d+)\.db$")


def enable_multiprocess(folder: Path) -> Path:
    """Make this process (and the ones it starts) write samples under `folder`.

    Must run before the first collector is created: prometheus-client picks the value
    class once, at import, from the environment.
    """
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(folder)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    prune_dead_processes(folder)
    return folder


def multiprocess_folder() -> Path | None:
    """The folder in use, or None in single-process mode."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def prune_dead_processes(folder: Path) -> list[int]:
    """Remove gauge files of processes that no longer run; the pids removed."""
    dead: set[int] = set()
    for path in folder.glob("gauge_*.db"):
        match = _GAUGE_FILE.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or pid_exists(pid):
            continue
        path.unlink(missing_ok=True)
        dead.add(pid)
    return sorted(dead)


def render_latest() -> tuple[bytes, str]:
    """The exposition text of every process (multiprocess) or of this one."""
    folder = multiprocess_folder()
    if folder is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    prune_dead_processes(folder)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
