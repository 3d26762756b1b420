"""Edge fixtures: real frames (a sample photo, drawn plates), models built with onnx.helper."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper
from PIL import Image, ImageDraw, ImageFont

from edge.models import packaged_file, prepare_centerface


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache of this test run."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def centerface_model(model_cache: Path) -> Path:
    """The rewritten CenterFace model."""
    return prepare_centerface(model_cache)


@pytest.fixture(scope="session")
def astronaut() -> NDArray[np.uint8]:
    """scikit-image's astronaut photo (512x512 RGB, one face), read from the wheel's files."""
    with Image.open(packaged_file("scikit-image", "astronaut.png")) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def plate_frame(text: str = "AB-123-CD", *, x: int = 200, y: int = 300) -> NDArray[np.uint8]:
    """A 640x480 frame with a white plate reading `text` at (x, y)."""
    canvas = Image.new("RGB", (640, 480), (90, 110, 90))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((x, y, x + 240, y + 60), fill="white", outline="black", width=2)
    draw.text((x + 15, y + 5), text, fill="black", font=ImageFont.load_default(size=44))
    return np.asarray(canvas, dtype=np.uint8)


def yolo_model(path: Path, output: NDArray[np.float32], *, size: int = 640) -> Path:
    """A YOLOv8-shaped model that ignores its pixels and always emits `output`."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    result = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))
    constant = helper.make_tensor("fixed", TensorProto.FLOAT, output.shape, output.flatten())
    nodes = [
        helper.make_node("Constant", [], ["fixed_out"], value=constant),
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", 1, [1], [0.0])),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["fixed_out", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "fixed-yolo", [images], [result])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
