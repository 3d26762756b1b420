"""`hub api` and `hub worker` as real subprocesses with their stderr kept in files."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec

from hub.settings import Settings
from tests.hub.delivery.harness import settings_env
from tests.support import free_port


class HubProcess:
    """One `hub <command>` subprocess; its log lines end up in `log_file`."""

    def __init__(self, command: str, settings: Settings, log_file: Path, **env: str) -> None:
        self.port = free_port()
        merged = msgspec.structs.replace(settings, api_port=self.port)
        self.env = {**settings_env(merged), **env}
        self.command = command
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HubProcess":
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
                [sys.executable, "-m", "hub.cli.main", self.command],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        return self

    def wait_ready(self, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"hub {self.command} not ready:\n{self.log_file.read_text()}")

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
