"""A guard over the test suite itself: no test may let llama.cpp load for real in the pytest process while
it fakes the CPU's identity or forces llama.cpp's extra buffer types (issue 21).

Why: extra buffer types on a CPU with Intel AMX run llama.cpp's AMX path, which crashes (SIGILL, SIGSEGV)
and takes the whole test run with it. A test that fakes "no AMX" is harmless on the developer's AMD
machine and fatal on a user's Xeon, so it must be caught here, on any machine, by reading the tests.

The scan reads every test module's syntax tree. A test function (with the module's own functions it calls)
is flagged when it
  1. fakes the CPU or forces the buffers: patches `read_cpuinfo`, `cpu_has_amx`, `use_extra_buffer_types`,
     `this_cpu_has_amx` or `CPUINFO`, passes `extra_buffer_types=True`, or sets `use_extra_bufts = True`;
  2. and reaches a loader of llama.cpp in-process: `LlamaCppLM`, `BatchEngine`, `load_model`,
     `load_high_level`, `Llama`, `build_lm`, `build_client`;
  3. unless llama.cpp's loader is replaced by a stand-in that never calls the real one (the module never
     reads `llama_model_load_from_file` except to patch it).
Code run in a child process (`tests.lm.child.run_in_child`) is a string to this scan, and may do anything.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CPU_IDENTITY = frozenset(
    {"read_cpuinfo", "cpu_has_amx", "use_extra_buffer_types", "this_cpu_has_amx", "CPUINFO"}
)
LOADERS = frozenset(
    {"LlamaCppLM", "BatchEngine", "load_model", "load_high_level", "Llama", "build_lm", "build_client"}
)
NATIVE_LOAD = "llama_model_load_from_file"
PATCHERS = frozenset({"setattr", "patch", "object", "setitem"})


@dataclass
class _Facts:
    fakes: bool = False
    loads: bool = False
    stubs_loader: bool = False
    calls: set[str] = field(default_factory=set)


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.rsplit(".", 1)[-1]
    return None


def _facts(function: ast.AST) -> _Facts:
    facts = _Facts()
    patched_targets: set[int] = set()  # ids of nodes that only name what a patch call replaces
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and _name(node.func) in PATCHERS:
            named = {_name(arg) for arg in node.args[:2]}
            if named & CPU_IDENTITY:
                facts.fakes = True
            if NATIVE_LOAD in named:
                facts.stubs_loader = True
            patched_targets.update(id(arg) for arg in node.args[:2])
    for node in ast.walk(function):
        if isinstance(node, ast.keyword) and node.arg in ("extra_buffer_types", "extra_bufts"):
            if isinstance(node.value, ast.Constant) and node.value.value is True:
                facts.fakes = True
        elif (
            isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is True
        ):
            if any(_name(target) == "use_extra_bufts" for target in node.targets):
                facts.fakes = True
        elif isinstance(node, ast.Name | ast.Attribute) and id(node) not in patched_targets:
            name = _name(node)
            if name in LOADERS:
                facts.loads = True
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                facts.calls.add(node.id)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            facts.calls.update(arg.arg for arg in node.args.args)  # fixtures of the same module
    return facts


def _reads_real_loader(tree: ast.Module) -> bool:
    """Whether the module reads llama.cpp's real loader other than as the name a patch replaces."""
    targets: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in PATCHERS:
            targets.update(id(arg) for arg in node.args[:2])
    return any(
        isinstance(node, ast.Attribute) and node.attr == NATIVE_LOAD and id(node) not in targets
        for node in ast.walk(tree)
    )


def unsafe_tests(source: str) -> list[str]:
    """Names of the test functions in `source` that can load llama.cpp under a faked CPU identity."""
    tree = ast.parse(source)
    functions = {
        node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    facts = {name: _facts(node) for name, node in functions.items()}
    calls_through = _reads_real_loader(tree)

    def closure(name: str) -> _Facts:
        total, seen, todo = _Facts(), set(), [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in facts:
                continue
            seen.add(current)
            one = facts[current]
            total.fakes |= one.fakes
            total.loads |= one.loads
            total.stubs_loader |= one.stubs_loader
            todo.extend(one.calls)
        return total

    flagged = []
    for name in functions:
        if not name.startswith("test"):
            continue
        reach = closure(name)
        stubbed = reach.stubs_loader and not calls_through
        if reach.fakes and reach.loads and not stubbed:
            flagged.append(name)
    return flagged


def test_no_test_loads_llama_cpp_under_a_faked_cpu() -> None:
    found = {
        str(path.relative_to(TESTS)): names
        for path in sorted(TESTS.rglob("test_*.py"))
        if (names := unsafe_tests(path.read_text(encoding="utf-8")))
    }
    assert not found, (
        f"these tests can run llama.cpp's extra buffer types (its AMX path) on an AMX CPU: {found}. Record "
        "the parameters with a stand-in loader that never calls the real one, or run the load with the "
        "machine's own flags in a child process (tests.lm.child.run_in_child)."
    )


# The test that killed the test run on an AMX Xeon (issue 21), in the shape it had: the guard must flag it.
_CRASHED_ON_AMX = """
def test_the_backend_loads_without_extra_buffer_types_on_an_amx_cpu(monkeypatch, cpuinfo, expected):
    llama_cpp = pytest.importorskip("llama_cpp")
    monkeypatch.setattr(llamacpp_load, "read_cpuinfo", lambda: cpuinfo)
    seen = []
    real = llama_cpp.llama_cpp.llama_model_load_from_file

    def recording(path, params):
        seen.append(bool(params.use_extra_bufts))
        return real(path, params)

    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_model_load_from_file", recording)
    monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", recording)

    async def scenario():
        lm = LlamaCppLM(LMSettings(backend="embedded", threads=1))
        return (await lm.complete("The capital of France is", Decoding(max_tokens=2))).text

    assert asyncio.run(scenario()) is not None
"""


def test_the_guard_flags_the_test_that_crashed_and_its_variants() -> None:
    assert unsafe_tests(_CRASHED_ON_AMX) == [
        "test_the_backend_loads_without_extra_buffer_types_on_an_amx_cpu"
    ]
    forced = "def test_forced():\n    engine = BatchEngine(path, n_seq=1, extra_buffer_types=True)\n"
    assert unsafe_tests(forced) == ["test_forced"]
    through_a_helper = (
        "def _fake(monkeypatch):\n    monkeypatch.setattr('selfinstruct.lm.llamacpp_load.read_cpuinfo', f)\n"
        "def _engine():\n    return load_high_level(llama_cpp, path)\n"
        "def test_indirect(monkeypatch):\n    _fake(monkeypatch)\n    _engine()\n"
    )
    assert unsafe_tests(through_a_helper) == ["test_indirect"]
    fixture = (
        "@pytest.fixture\ndef fake_amd(monkeypatch):\n"
        "    monkeypatch.setattr(llamacpp_load, 'cpu_has_amx', no)\n"
        "def test_with_fixture(fake_amd):\n    LlamaCppLM(settings).load()\n"
    )
    assert unsafe_tests(fixture) == ["test_with_fixture"]


def test_the_guard_allows_stand_ins_and_the_machines_own_flags() -> None:
    stand_in = (
        "def test_records(monkeypatch):\n"
        "    monkeypatch.setattr(llamacpp_load, 'read_cpuinfo', lambda: EPYC)\n"
        "    monkeypatch.setattr(llama_cpp, 'llama_model_load_from_file', stop)\n"
        "    LlamaCppLM(settings).load()\n"
    )
    assert unsafe_tests(stand_in) == []
    own_flags = "def test_real():\n    LlamaCppLM(settings).load()\n"
    assert unsafe_tests(own_flags) == []
    child = "def test_child():\n    run_in_child('monkeypatch read_cpuinfo; LlamaCppLM(s).load()')\n"
    assert unsafe_tests(child) == []
