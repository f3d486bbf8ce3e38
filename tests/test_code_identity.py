"""Behavioural code identity: what counts as a change of the code a run executed, and what the
trace of a run records."""

import importlib.util
import sys
import textwrap
from pathlib import Path

from offrl_bench.trust.code_identity import ExecutionTrace, ModuleIndex, SourceTree, code_changes, code_record

MODULE = '''\
"""A module."""
from offrl_bench.core.api import Batch
import numpy as np

SCALE = 2.0


class Net:
    """A class."""
    width = 3

    def forward(self, x):
        """Doubles."""
        return helper(x) * SCALE

    def unused(self):
        return 0


def helper(x):
    # a comment
    return x + 1


def never_called():
    return 1
'''


def _tree(tmp_path: Path, files: dict[str, str]) -> SourceTree:
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(textwrap.dedent(text))
    return SourceTree(tmp_path)


def _recorded(tmp_path: Path) -> dict:
    """The code record of a run that called Net.forward and helper in algorithms/net.py."""
    _tree(tmp_path / "old", {"algorithms/net.py": MODULE})
    return code_record({"algorithms/net.py": {"", "Net.forward", "helper"}}, tmp_path / "old", {"helper", "SCALE"})


def test_record_hashes_executed_functions_and_what_they_refer_to(tmp_path):
    record = _recorded(tmp_path)["algorithms/net.py"]
    assert set(record["functions"]) == {"Net.forward", "helper"}  # not Net.unused, not never_called
    # Net: a method of it ran; SCALE: executed code reads it. Not Batch or np: nothing that ran uses them
    assert set(record["classes"]) == {"Net"} and set(record["bindings"]) == {"SCALE"}
    # a constant another used constant is computed from counts too, through the chain
    _tree(tmp_path / "chain", {"algorithms/chain.py": "BASE = 2\nSCALE = BASE * 3\nOTHER = 1\n\n"
                                                        "def f():\n    return SCALE\n"})
    chained = code_record({"algorithms/chain.py": {"", "f"}}, tmp_path / "chain", {"SCALE"})
    assert set(chained["algorithms/chain.py"]["bindings"]) == {"BASE", "SCALE"}


def test_comments_docstrings_formatting_new_code_and_code_no_run_uses_do_not_count(tmp_path):
    recorded = _recorded(tmp_path)
    edited = (MODULE.replace('"""Doubles."""', '"""Doubles its input (a longer docstring)."""')
              .replace("# a comment", "# another comment\n    # and one more")
              .replace("return helper(x) * SCALE", "return (helper(x)\n                * SCALE)")
              .replace("def unused(self):\n        return 0", "def unused(self):\n        return 42")
              .replace("def never_called():\n    return 1", "def never_called():\n    return 2")
              .replace("import numpy as np", "import numpy as np\nUNUSED = 3")
              + "\n\nclass NewEncoder:\n    def forward(self, x):\n        return x\n"
              + "\nfrom offrl_bench.algorithms import nn\n")
    assert code_changes(recorded, _tree(tmp_path / "new", {"algorithms/net.py": edited})) == []


def test_a_function_moved_to_another_module_keeps_its_identity(tmp_path):
    recorded = _recorded(tmp_path)
    helper = "def helper(x):\n    return x + 1\n"
    moved = MODULE.replace("def helper(x):\n    # a comment\n    return x + 1\n", "").replace(
        "import numpy as np", "import numpy as np\nfrom offrl_bench.helpers import helper")
    tree = _tree(tmp_path / "new", {"algorithms/net.py": moved, "offrl_bench/helpers.py": helper})
    assert code_changes(recorded, tree) == []
    # a module moved into a folder (same file name, one candidate) keeps its units too
    tree = _tree(tmp_path / "folder", {"algorithms/models/net.py": MODULE})
    assert code_changes(recorded, tree) == []


def test_changes_to_executed_code_are_named(tmp_path):
    recorded = _recorded(tmp_path)

    def changes(text: str) -> list[str]:
        return code_changes(recorded, _tree(tmp_path / str(abs(hash(text))), {"algorithms/net.py": text}))

    assert changes(MODULE.replace("return x + 1", "return x + 2")) == ["algorithms/net.py:helper changed"]
    assert changes(MODULE.replace("SCALE = 2.0", "SCALE = 3.0")) == ["algorithms/net.py: SCALE changed"]
    assert changes(MODULE.replace("    width = 3", "    width = 4")) == ["algorithms/net.py: Net changed"]
    assert changes(MODULE.replace("import numpy as np", "import jax.numpy as np")) == []  # no run uses np
    assert changes(MODULE + "\ntorch_default = print('side effect')\nprint('at import')\n") == [
        "algorithms/net.py: module-level statements changed"]
    assert changes(MODULE.replace("def helper(x):\n    # a comment\n    return x + 1\n", "")) == [
        "algorithms/net.py:helper removed"]
    assert changes(MODULE.replace("@", "").replace("def forward(self, x):", "@staticmethod\n    def forward(self, x):")
                   ) == ["algorithms/net.py:Net.forward changed"]  # decorators are part of a function


def test_property_getter_and_setter_share_one_unit():
    index = ModuleIndex("class A:\n    @property\n    def x(self):\n        return 1\n"
                        "    @x.setter\n    def x(self, v):\n        pass\n")
    changed = ModuleIndex("class A:\n    @property\n    def x(self):\n        return 1\n"
                          "    @x.setter\n    def x(self, v):\n        print(v)\n")
    assert set(index.functions) == {"A.x"} and index.functions != changed.functions


def test_trace_records_the_functions_a_call_executes_in_any_thread(tmp_path):
    _tree(tmp_path, {"offrl_bench_probe/__init__.py": "", "algorithms/traced.py": '''\
        import threading

        def outer(x):
            inner = lambda y: y + 1
            return [inner(v) for v in range(x)]

        class K:
            def run(self):
                thread = threading.Thread(target=in_thread)
                thread.start()
                thread.join()
                return outer(2)

        def in_thread():
            return 1

        def untouched():
            return 0
        '''})
    spec = importlib.util.spec_from_file_location("traced_probe", tmp_path / "algorithms" / "traced.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["traced_probe"] = module
    trace = ExecutionTrace().start()
    try:
        assert module.K().run() == [1, 2]
    finally:
        trace.stop()
    assert trace.executed(tmp_path) == {"algorithms/traced.py": {"", "K.run", "outer", "in_thread"}}
