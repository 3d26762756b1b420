"""Both policy engines on tiny bundles written here: compile errors, allow and deny paths,
undefined values, thread safety, and the choice between rego-cpp and wasm.

No OPA compiler is available to build a real `policy.wasm`, so the wasm engine runs a small
module written in WebAssembly text below that speaks OPA's wasm ABI (version 1.2: the
exports, `opa_eval`, data and input handling opa-py-wasm uses). It proves the engine's
plumbing end to end; it does not prove that OPA-compiled Rego gives the same answers.
"""

import threading
from typing import Any

import msgspec
import pytest
import wasmtime

from hub.policy.bundle import LoadedBundle
from hub.policy.engines import ENTRYPOINTS, RegoEngine, WasmEngine, load_engine
from hub.policy.engines.rego import compiler_message
from hub.policy.errors import PolicyEvaluationError, PolicyLoadError

AUTHZ = """package hub.authz

import rego.v1

default decision := {"allow": false, "reason": "no rule allows this"}

decision := {"allow": true, "reason": "admin"} if "admin" in input.subject.roles

decision := {"allow": true, "reason": "own jurisdiction"} if {
    not "admin" in input.subject.roles
    input.request.resource.jurisdiction in data.hub.jurisdictions[input.subject.agency]
}
"""
BROKEN = """package hub.broken

import rego.v1

conflict := 1 if true

conflict := 2 if input.clash

no_default := {"v": 1} if input.defined
"""
DATA = '{"hub": {"jurisdictions": {"police-north": ["north"], "police-south": ["south"]}}}'


def rego_engine() -> RegoEngine:
    return RegoEngine(
        {"hub/authz/authz.rego": AUTHZ, "hub/broken/broken.rego": BROKEN},
        DATA,
        revision="r1",
        entrypoints=["hub/authz/decision", "hub/broken/conflict", "hub/broken/no_default"],
    )


def authz_input(*, roles: list[str], agency: str | None, jurisdiction: str) -> bytes:
    return msgspec.json.encode(
        {
            "subject": {"id": "u1", "kind": "user", "roles": roles, "agency": agency},
            "request": {"method": "GET", "resource": {"jurisdiction": jurisdiction}},
        }
    )


def decode(raw: bytes) -> Any:
    return msgspec.json.decode(raw)


# --- rego-cpp ------------------------------------------------------------------------------


def test_a_syntax_error_names_the_file_and_line() -> None:
    source = "package hub.authz\n\nimport rego.v1\n\ndecision if { input.x == }\n"
    with pytest.raises(PolicyLoadError) as caught:
        RegoEngine({"hub/authz.rego": source}, "{}", revision="r", entrypoints=ENTRYPOINTS)
    assert caught.value.detail.startswith("hub/authz.rego:5:")
    assert "Invalid boolean operator" in caught.value.detail
    assert caught.value.status == 422


def test_an_error_found_while_building_is_a_load_error() -> None:
    source = "package x\n\ndefault a := 1\n\ndefault a := 2\n"
    with pytest.raises(PolicyLoadError, match="Multiple default rules"):
        RegoEngine({"x.rego": source}, "{}", revision="r", entrypoints=["x/a"])


def test_bad_data_json_is_a_load_error() -> None:
    with pytest.raises(PolicyLoadError):
        RegoEngine({"hub/authz.rego": AUTHZ}, "{not json", revision="r", entrypoints=ENTRYPOINTS)


def test_allow_and_deny_paths() -> None:
    engine = rego_engine()
    admin = engine.evaluate(
        "hub/authz/decision", authz_input(roles=["admin"], agency=None, jurisdiction="x")
    )
    own = engine.evaluate(
        "hub/authz/decision",
        authz_input(roles=["agency"], agency="police-north", jurisdiction="north"),
    )
    other = engine.evaluate(
        "hub/authz/decision",
        authz_input(roles=["agency"], agency="police-north", jurisdiction="south"),
    )
    assert decode(admin) == {"allow": True, "reason": "admin"}
    assert decode(own) == {"allow": True, "reason": "own jurisdiction"}
    assert decode(other) == {"allow": False, "reason": "no rule allows this"}
    assert engine.revision == "r1"


def test_an_entrypoint_that_was_not_compiled_is_an_error() -> None:
    with pytest.raises(PolicyEvaluationError, match="not an entrypoint"):
        rego_engine().evaluate("hub/nope/decision", b"{}")


def test_an_undefined_value_is_an_error() -> None:
    engine = rego_engine()
    assert decode(engine.evaluate("hub/broken/no_default", b'{"defined": true}')) == {"v": 1}
    with pytest.raises(PolicyEvaluationError, match="no single value"):
        engine.evaluate("hub/broken/no_default", b"{}")


def test_a_runtime_error_carries_the_engine_message() -> None:
    engine = rego_engine()
    assert decode(engine.evaluate("hub/broken/conflict", b'{"clash": false}')) == 1
    with pytest.raises(PolicyEvaluationError, match="multiple outputs"):
        engine.evaluate("hub/broken/conflict", b'{"clash": true}')


def test_input_that_is_not_json_is_an_error() -> None:
    with pytest.raises(PolicyEvaluationError, match="not valid JSON"):
        rego_engine().evaluate("hub/authz/decision", b"{nope")


ECHO = r"""package hub.echo

import rego.v1

value := input

literal := input.s == "q\"b\\c\nd\u0000é"

lookup := data.hub.by_name[input.s]
"""
ECHO_ENTRYPOINTS = ["hub/echo/value", "hub/echo/literal", "hub/echo/lookup"]


def echo_engine(*, exact_input: bool, data: str = "{}") -> RegoEngine:
    return RegoEngine(
        {"echo.rego": ECHO},
        data,
        revision="r",
        entrypoints=ECHO_ENTRYPOINTS,
        exact_input=exact_input,
    )


@pytest.mark.parametrize("exact_input", [False, True])
@pytest.mark.parametrize(
    "value",
    [
        {"s": 'é " \\ \n \t \x00 😀', 'k"ey': [True, False, None]},
        {"i": -(2**63), "j": 2**63 - 1, "f": 0.25, "g": 52.370216, "o": {"e": {}, "a": []}},
        {"big": 123456789012345678901234567890, "precise": 0.87345678912, "tiny": 1e-9},
    ],
    ids=["strings", "numbers", "beyond-the-c-calls"],
)
def test_values_reach_the_policy_unchanged(value: dict[str, Any], exact_input: bool) -> None:
    engine = echo_engine(exact_input=exact_input)
    assert decode(engine.evaluate("hub/echo/value", msgspec.json.encode(value))) == value


@pytest.mark.parametrize("exact_input", [False, True])
def test_input_strings_equal_the_policy_literals_and_data_keys(exact_input: bool) -> None:
    data = msgspec.json.encode({"hub": {"by_name": {'a "quoted" name': 1}}}).decode()
    engine = echo_engine(exact_input=exact_input, data=data)
    special = msgspec.json.encode({"s": 'q"b\\c\nd\x00é'})
    assert decode(engine.evaluate("hub/echo/literal", special)) is True
    named = msgspec.json.encode({"s": 'a "quoted" name'})
    assert decode(engine.evaluate("hub/echo/lookup", named)) == 1


def test_a_bundle_that_marshals_input_gets_it_parsed_exactly() -> None:
    source = "package hub.m\n\nimport rego.v1\n\nout := json.marshal(input.o)\n"
    engine = RegoEngine({"m.rego": source}, "{}", revision="r", entrypoints=["hub/m/out"])
    raw = engine.evaluate("hub/m/out", b'{"o": {"a": [1, "x"]}}')
    assert decode(decode(raw)) == {"a": [1, "x"]}


def test_concurrent_evaluations_from_threads_get_their_own_answers() -> None:
    engine = rego_engine()
    cases = [
        (authz_input(roles=["admin"], agency=None, jurisdiction="x"), True),
        (authz_input(roles=["agency"], agency="police-north", jurisdiction="north"), True),
        (authz_input(roles=["agency"], agency="police-south", jurisdiction="north"), False),
        (authz_input(roles=["agency"], agency="police-south", jurisdiction="south"), True),
    ]
    wrong: list[int] = []

    def run(worker: int) -> None:
        for i in range(500):
            raw, allow = cases[(worker + i) % len(cases)]
            if decode(engine.evaluate("hub/authz/decision", raw))["allow"] is not allow:
                wrong.append(i)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert wrong == []


def test_compiler_messages_are_read_from_the_error_sequence() -> None:
    text = (
        "(rego-errorseq\n  (error 6:x.rego|11|2\n    (errormsg 24:Invalid boolean operator)\n"
        "    (errorast |11|2))\n  (error\n    (errormsg 16:this is unclosed)))\n"
    )
    sources = {"x.rego": "package x\na if { b == }\n"}
    assert compiler_message(text, sources) == (
        "x.rego:2:2: Invalid boolean operator; this is unclosed"
    )
    assert compiler_message("(rego-errorseq)", sources) == "(rego-errorseq)"


# --- OPA wasm ABI stub -------------------------------------------------------------------

STUB_ENTRYPOINTS = '{"stub/allow":0,"stub/undefined":1,"stub/echo":2,"stub/data":3,"stub/trap":4}'
STUB_WAT = r"""
(module
  (import "env" "memory" (memory 2))
  (import "env" "opa_abort" (func $abort (param i32)))
  (global (export "opa_wasm_abi_version") i32 (i32.const 1))
  (global (export "opa_wasm_abi_minor_version") i32 (i32.const 2))
  (global $heap (mut i32) (i32.const 65536))
  (data (i32.const 1024) "ENTRYPOINTS\00")
  (data (i32.const 2048) "BUILTINS\00")
  (data (i32.const 3000) "[{\"result\":{\"allow\":true,\"reason\":\"stub\"}}]\00")
  (data (i32.const 3100) "[]\00")
  (data (i32.const 3200) "[{\"result\":")
  (data (i32.const 3220) "}]\00")
  (data (i32.const 3240) "null\00")
  (data (i32.const 3300) "stub trap\00")
  (func $malloc (export "opa_malloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $p) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (block $done
      (loop $grow
        (br_if $done (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (drop (memory.grow (i32.const 1)))
        (br $grow)))
    (local.get $p))
  (func (export "opa_free") (param i32))
  (func (export "opa_heap_ptr_get") (result i32) (global.get $heap))
  (func (export "opa_heap_ptr_set") (param i32) (global.set $heap (local.get 0)))
  (func (export "entrypoints") (result i32) (i32.const 1024))
  (func (export "builtins") (result i32) (i32.const 2048))
  ;; A "value" is its NUL-terminated JSON text, so parse copies and dump is the identity.
  (func (export "opa_json_dump") (param i32) (result i32) (local.get 0))
  (func (export "opa_json_parse") (param $addr i32) (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (call $malloc (i32.add (local.get $len) (i32.const 1))))
    (memory.copy (local.get $p) (local.get $addr) (local.get $len))
    (i32.store8 (i32.add (local.get $p) (local.get $len)) (i32.const 0))
    (local.get $p))
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (local.get $n))
  (func $result (param $src i32) (param $len i32) (result i32)
    (local $out i32)
    (local.set $out (call $malloc (i32.add (local.get $len) (i32.const 14))))
    (memory.copy (local.get $out) (i32.const 3200) (i32.const 11))
    (memory.copy (i32.add (local.get $out) (i32.const 11)) (local.get $src) (local.get $len))
    (memory.copy
      (i32.add (i32.add (local.get $out) (i32.const 11)) (local.get $len))
      (i32.const 3220) (i32.const 3))
    (local.get $out))
  (func (export "opa_eval") (param $reserved i32) (param $ep i32) (param $data i32)
        (param $input i32) (param $input_len i32) (param $heap_ptr i32) (param $format i32)
        (result i32)
    (global.set $heap (local.get $heap_ptr))
    (if (i32.eq (local.get $ep) (i32.const 0)) (then (return (i32.const 3000))))
    (if (i32.eq (local.get $ep) (i32.const 1)) (then (return (i32.const 3100))))
    (if (i32.eq (local.get $ep) (i32.const 2))
      (then (return (call $result (local.get $input) (local.get $input_len)))))
    (if (i32.eq (local.get $ep) (i32.const 3)) (then
      (if (i32.eqz (local.get $data)) (then (return (call $result (i32.const 3240) (i32.const 4)))))
      (return (call $result (local.get $data) (call $strlen (local.get $data))))))
    (call $abort (i32.const 3300))
    (unreachable))
)
"""


def stub_wasm(*, builtins: str = "{}") -> bytes:
    """The ABI stub: allow, undefined, echo input, echo data, and an aborting entrypoint."""
    wat = STUB_WAT.replace("ENTRYPOINTS", STUB_ENTRYPOINTS.replace('"', '\\"'))
    return wasmtime.wat2wasm(wat.replace("BUILTINS", builtins.replace('"', '\\"')))


@pytest.fixture
def wasm_engine() -> Any:
    engine = WasmEngine(stub_wasm(), '{"tenant": "north"}', revision="w1", timeout_ms=1000)
    yield engine
    engine.close()


@pytest.mark.parametrize("garbage", [b"", b"not wasm at all", b"\x00asm\x01\x00\x00\x00"])
def test_wasm_that_is_not_an_opa_policy_fails_to_load(garbage: bytes) -> None:
    with pytest.raises(PolicyLoadError, match=r"^policy\.wasm: "):
        WasmEngine(garbage, "{}", revision="w")


def test_wasm_needing_builtins_the_hub_lacks_fails_to_load() -> None:
    with pytest.raises(PolicyLoadError, match=r"custom\.lookup"):
        WasmEngine(stub_wasm(builtins='{"custom.lookup":0}'), "{}", revision="w")


def test_wasm_evaluates_entrypoints_with_input_and_data(wasm_engine: WasmEngine) -> None:
    assert wasm_engine.revision == "w1"
    assert {"stub/allow", "stub/echo"} <= wasm_engine.entrypoints
    assert decode(wasm_engine.evaluate("stub/allow", b"{}")) == {"allow": True, "reason": "stub"}
    value = {"subject": {"roles": ["agency"]}, "n": [1, 2.5, None, "é"]}
    assert decode(wasm_engine.evaluate("stub/echo", msgspec.json.encode(value))) == value
    assert decode(wasm_engine.evaluate("stub/data", b"{}")) == {"tenant": "north"}


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [("stub/undefined", "undefined"), ("stub/trap", "stub trap"), ("stub/missing", "unknown")],
)
def test_wasm_failures_are_evaluation_errors(
    wasm_engine: WasmEngine, entrypoint: str, message: str
) -> None:
    with pytest.raises(PolicyEvaluationError, match=message):
        wasm_engine.evaluate(entrypoint, b"{}")
    # The pool replaced the trapped instance: the engine still answers.
    assert decode(wasm_engine.evaluate("stub/allow", b"{}"))["allow"] is True


def test_wasm_evaluations_from_threads() -> None:
    engine = WasmEngine(stub_wasm(), "{}", revision="w", pool_size=2)
    wrong: list[int] = []

    def run(worker: int) -> None:
        for i in range(100):
            raw = msgspec.json.encode({"worker": worker, "i": i})
            if decode(engine.evaluate("stub/echo", raw)) != {"worker": worker, "i": i}:
                wrong.append(i)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    engine.close()
    assert wrong == []


# --- choosing the engine -------------------------------------------------------------------


def bundle(*, wasm: bytes | None) -> LoadedBundle:
    return LoadedBundle(
        revision="b1",
        roots=["hub", "system"],
        sources={"hub/authz/authz.rego": AUTHZ},
        data_json=DATA,
        wasm=wasm,
    )


def test_a_bundle_without_wasm_runs_on_rego_cpp() -> None:
    engine = load_engine(bundle(wasm=None))
    assert isinstance(engine, RegoEngine)
    raw = authz_input(roles=["agency"], agency="police-south", jurisdiction="south")
    assert decode(engine.evaluate("hub/authz/decision", raw))["allow"] is True
    assert engine.entrypoints == frozenset(ENTRYPOINTS)


def test_a_bundle_with_policy_wasm_runs_on_the_wasm_engine() -> None:
    engine = load_engine(bundle(wasm=stub_wasm()))
    try:
        assert isinstance(engine, WasmEngine)
        assert engine.revision == "b1"
        assert decode(engine.evaluate("stub/data", b"{}")) == decode(DATA.encode())
    finally:
        engine.close()


def test_a_bundle_with_broken_wasm_does_not_fall_back_to_rego() -> None:
    with pytest.raises(PolicyLoadError, match=r"policy\.wasm"):
        load_engine(bundle(wasm=b"garbage"))
