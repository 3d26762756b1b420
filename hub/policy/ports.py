"""The engine interface: one compiled bundle, evaluated in-process by entrypoint."""

from typing import Protocol


class PolicyEngine(Protocol):
    """Evaluates entrypoints of one loaded bundle. Implementations: rego-cpp (regopy) over the
    bundle's Rego sources; OPA WebAssembly (opa-py-wasm) when the bundle carries policy.wasm."""

    @property
    def revision(self) -> str:
        """The bundle revision from its `.manifest`."""
        ...

    def evaluate(self, entrypoint: str, input_json: bytes) -> bytes:
        """The entrypoint's value for this input, as JSON; raises `PolicyEvaluationError`
        when evaluation fails or the entrypoint is undefined."""
        ...
