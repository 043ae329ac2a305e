"""Slow marks live in the test files (`@pytest.mark.slow`, or a module's `pytestmark`), nowhere
else: no conftest adds marks by name, and a test that asks for a fixture its slow siblings share
(an engine run, a reference model) is marked slow like them, so a new test on the `baseline` run
cannot land in `make test-fast` unmarked."""

from __future__ import annotations

import ast
import pathlib

_TESTS = pathlib.Path(__file__).resolve().parent


def _is_slow_mark(node: ast.expr) -> bool:
  """`pytest.mark.slow` (also inside a list of marks)."""
  if isinstance(node, (ast.List, ast.Tuple)):
    return any(_is_slow_mark(e) for e in node.elts)
  return isinstance(node, ast.Attribute) and node.attr == "slow"


def _is_fixture(fn: ast.FunctionDef) -> bool:
  return any("fixture" in ast.unparse(d) for d in fn.decorator_list)


def _tests_and_fixtures(path: pathlib.Path):
  """({test name: (fixtures of this file it asks for, marked slow)}, module marked slow)."""
  tree = ast.parse(path.read_text())
  module_slow = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark"
                                                      for t in n.targets)
                    and _is_slow_mark(n.value) for n in tree.body)
  functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
  fixtures = {f.name for f in functions if _is_fixture(f)}
  tests = {}
  for fn in functions:
    if fn.name.startswith("test_"):
      asked = {a.arg for a in fn.args.args} & fixtures
      slow = module_slow or any(_is_slow_mark(d) for d in fn.decorator_list)
      tests[fn.name] = (asked, slow)
  return tests


def test_no_conftest_marks_tests():
  for conftest in _TESTS.rglob("conftest.py"):
    tree = ast.parse(conftest.read_text())
    hooks = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "pytest_collection_modifyitems" not in hooks, f"{conftest}: mark tests in their files"


def test_tests_sharing_a_slow_fixture_are_marked_slow():
  unmarked = []
  for path in sorted(_TESTS.rglob("test_*.py")):
    tests = _tests_and_fixtures(path)
    slow_fixtures = set().union(*[asked for asked, slow in tests.values() if slow] or [set()])
    unmarked += [f"{path.relative_to(_TESTS)}::{name} (uses {sorted(asked & slow_fixtures)})"
                 for name, (asked, slow) in tests.items() if asked & slow_fixtures and not slow]
  assert not unmarked, "mark them @pytest.mark.slow like their siblings:\n" + "\n".join(unmarked)
