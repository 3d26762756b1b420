"""OPA WebAssembly (opa-py-wasm on wasmtime): runs `policy.wasm` from `opa build -t wasm`.

opa-py-wasm keeps a small pool of wasm instances, so evaluations from several threads do not
share one; an evaluation that runs past the budget is interrupted by wasmtime (epoch
deadline) and fails.
"""

import msgspec
from opapywasm import UNDEFINED, OpaWasmError, OpaWasmPolicy, PolicyConfig

from hub.policy.errors import PolicyEvaluationError, PolicyLoadError


class WasmEngine:
    """A compiled OPA policy module with the bundle's data loaded."""

    def __init__(
        self,
        wasm: bytes,
        data_json: str,
        *,
        revision: str,
        timeout_ms: int | None = None,
        pool_size: int = 2,
    ) -> None:
        config = PolicyConfig(
            pool_size=pool_size,
            borrow_timeout_seconds=1.0,
            eval_timeout_seconds=None if timeout_ms is None else max(timeout_ms, 10) / 1000,
            # The hub hands over JSON it encoded itself; a second parse would only cost time.
            parse_raw_json_input=False,
        )
        try:
            self._policy = OpaWasmPolicy.from_wasm_bytes(wasm, config)
        except OpaWasmError as exc:
            raise PolicyLoadError(f"policy.wasm: {_first_line(exc)}") from None
        try:
            self._check_builtins()
            self._policy.set_data(data_json.encode())
        except (OpaWasmError, PolicyLoadError) as exc:
            self._policy.close()
            raise PolicyLoadError(f"policy.wasm: {_first_line(exc)}") from None
        self._revision = revision

    @property
    def revision(self) -> str:
        """The bundle revision from its `.manifest`."""
        return self._revision

    @property
    def kind(self) -> str:
        """Which engine this is, for metrics and status pages."""
        return "wasm"

    @property
    def entrypoints(self) -> frozenset[str]:
        """The entrypoints the module was compiled with."""
        return frozenset(self._policy.entrypoints)

    def evaluate(self, entrypoint: str, input_json: bytes) -> bytes:
        """The entrypoint's value for this input, as JSON; `PolicyEvaluationError` when
        evaluation fails, is interrupted, or the value is undefined."""
        try:
            value = self._policy.evaluate(input_json, entrypoint)
        except OpaWasmError as exc:
            raise PolicyEvaluationError(f"{entrypoint}: {_first_line(exc)}") from None
        if value is UNDEFINED:
            raise PolicyEvaluationError(f"{entrypoint} is undefined for this input")
        return msgspec.json.encode(value)

    def close(self) -> None:
        """Release the wasm instances and the deadline ticker thread (idempotent)."""
        self._policy.close()

    def _check_builtins(self) -> None:
        """Refuse a module that calls host builtins nobody provides, at load, not per call."""
        missing = sorted(set(self._policy.builtins) - set(self._policy.registered_builtins))
        if missing:
            raise PolicyLoadError(f"needs builtins the hub does not provide: {', '.join(missing)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
