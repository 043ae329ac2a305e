"""The conftest's slow-test lists name tests and fixtures that exist (a rename must not silently
move a heavy test into `make test-fast`)."""

from __future__ import annotations

import ast
import pathlib

from tests import conftest

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _functions(path: pathlib.Path) -> set[str]:
  return {n.name for n in ast.walk(ast.parse(path.read_text()))
          if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_listed_slow_tests_files_and_fixtures_exist():
  for entry in conftest._SLOW_TESTS:  # pylint: disable=protected-access
    path, _, name = entry.partition("::")
    assert name in _functions(_REPO / path), entry
  for path in conftest._SLOW_FILES:  # pylint: disable=protected-access
    assert (_REPO / path).is_file(), path
  defined = set().union(*(_functions(p) for p in (_REPO / "tests").rglob("*.py")))
  for fixture in conftest._SLOW_FIXTURES:  # pylint: disable=protected-access
    assert fixture in defined, fixture
