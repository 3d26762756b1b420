"""The two policy engines behind `PolicyEngine`, and the choice between them.

rego-cpp (`RegoEngine`) is the default: it compiles the bundle's Rego at load. A bundle built
with `opa build -t wasm` carries `policy.wasm`, and then OPA's own compiled module runs
(`WasmEngine`). Same input, same output.
"""

from typing import get_args

from hub.policy.bundle import LoadedBundle
from hub.policy.engines.rego import RegoEngine
from hub.policy.engines.wasm import WasmEngine
from hub.policy.ports import PolicyEngine
from hub.policy.schemas import Entrypoint

ENTRYPOINTS: tuple[str, ...] = get_args(Entrypoint)


def load_engine(bundle: LoadedBundle, *, timeout_ms: int | None = None) -> PolicyEngine:
    """Compile `bundle` into an engine: wasm when it carries policy.wasm, else Rego.

    Raises `PolicyLoadError` (with the compiler's message) when it does not load.
    `timeout_ms` bounds each wasm evaluation (rego-cpp evaluations cannot be interrupted).
    """
    if bundle.wasm is not None:
        return WasmEngine(
            bundle.wasm, bundle.data_json, revision=bundle.revision, timeout_ms=timeout_ms
        )
    return RegoEngine(
        bundle.sources, bundle.data_json, revision=bundle.revision, entrypoints=ENTRYPOINTS
    )


__all__ = ["ENTRYPOINTS", "RegoEngine", "WasmEngine", "load_engine"]
