"""Shared fixtures: a small synthetic CASME II in the official layout, written once per session."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import warnings

import pytest

from microexp.train import compile_cache

_OWN_CACHE = []


def pytest_configure(config):
  """One XLA compilation cache for the whole session, shared with the main.py / predict
  subprocesses some tests start (through the environment): an engine program that several tests
  compile is compiled once. $MICROEXP_COMPILATION_CACHE if set (`make test` keeps one across
  runs: Makefile, TEST_XLA_CACHE), else a fresh folder for this session, removed after it."""
  del config
  # Several test processes (make test: pytest -n 2) must not each claim 75% of an accelerator.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  if os.environ.get(compile_cache.ENV):
    try:
      compile_cache.enable(compile_cache.directory())
      return
    except OSError as e:  # e.g. a read-only home on a CI machine: a fresh folder instead
      warnings.warn(f"{e} Using a fresh compilation cache for this session.")
  os.environ[compile_cache.ENV] = tempfile.mkdtemp(prefix="microexp-xla-")
  _OWN_CACHE.append(os.environ[compile_cache.ENV])
  compile_cache.enable(compile_cache.directory())


def pytest_unconfigure(config):
  del config
  for folder in _OWN_CACHE:
    shutil.rmtree(folder, ignore_errors=True)

# Size of the shared synthetic CASME II (fast to write: ~1 s).
SYNTHETIC_CASME2_KWARGS = dict(num_subjects=6, clips_per_subject=6, image_size=(85, 70),
                               num_frames=(12, 20), seed=0, quirks=True)


@pytest.fixture(scope="session")
def synthetic_casme2_root(tmp_path_factory) -> pathlib.Path:
  """Root of a synthetic CASME II (sheet + Cropped/), 6 subjects x 6 clips, 85x70, quirks on.

  Read-only for tests: copy it (shutil.copytree) before changing anything.
  """
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("synthetic_casme2")
  return synthetic.write_synthetic_casme2(root, **SYNTHETIC_CASME2_KWARGS)


_HEADER = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
           "Estimated Emotion")


def _write_coding_sheet(folder, rows, header=_HEADER, sheet="Sheet1",
                        name="CASME2-coding-20140508.xlsx") -> pathlib.Path:
  import openpyxl  # pylint: disable=g-import-not-at-top
  wb = openpyxl.Workbook()
  ws = wb.active
  ws.title = sheet
  ws.append(list(header))
  for row in rows:
    ws.append(list(row))
  path = pathlib.Path(folder) / name
  wb.save(path)
  return path


@pytest.fixture(name="write_coding_sheet")
def fixture_write_coding_sheet():
  """`write(folder, rows, header=official, sheet='Sheet1', name=...) -> path` of a small .xlsx.

  Rows are lists of cell values under `header` (official columns + one unnamed empty column).
  """
  return _write_coding_sheet

