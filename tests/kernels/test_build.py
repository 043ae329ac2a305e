"""Building the CPU kernels: cached per source and machine, clear failures, a switch to turn off."""

from __future__ import annotations

import pathlib

import pytest

from microexp.kernels import build


def test_a_built_library_is_reused(tmp_path, monkeypatch):
  monkeypatch.setenv(build.ENV_CACHE, str(tmp_path))
  path = build.library_path("augment")
  assert path.parent == tmp_path and path.exists()
  mtime = path.stat().st_mtime_ns
  assert build.library_path("augment") == path and path.stat().st_mtime_ns == mtime
  assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_changed_source_is_built_anew(tmp_path, monkeypatch):
  monkeypatch.setenv(build.ENV_CACHE, str(tmp_path / "cache"))
  sources = tmp_path / "src"
  sources.mkdir()
  for f in build._HERE.glob("*.h"):  # pylint: disable=protected-access
    (sources / f.name).write_text(f.read_text())
  source = sources / "augment.cc"
  source.write_text((build._HERE / "augment.cc").read_text())  # pylint: disable=protected-access
  monkeypatch.setattr(build, "_HERE", sources)
  first = build.library_path("augment")
  source.write_text(source.read_text() + "\n// changed\n")
  assert build.library_path("augment") != first


def test_a_failing_build_names_the_compiler_error_and_leaves_no_library(tmp_path, monkeypatch):
  monkeypatch.setenv(build.ENV_CACHE, str(tmp_path / "cache"))
  sources = tmp_path / "src"
  sources.mkdir()
  (sources / "broken.cc").write_text("this is not C++;\n")
  monkeypatch.setattr(build, "_HERE", sources)
  with pytest.raises(RuntimeError, match="broken.cc"):
    build.library_path("broken")
  assert not list((tmp_path / "cache").glob("*"))


def test_without_a_compiler_the_kernels_are_off_with_a_warning(monkeypatch, caplog):
  monkeypatch.setattr(build, "_compiler", lambda: None)
  build.load.cache_clear()
  try:
    with caplog.at_level("WARNING"):
      assert build.load("augment") is None
    assert "no C++ compiler" in caplog.text
  finally:
    build.load.cache_clear()


def test_the_switch_turns_the_kernels_off(monkeypatch):
  build.load.cache_clear()
  try:
    for value in ("0", "false", "off"):
      monkeypatch.setenv(build.ENV_SWITCH, value)
      assert not build.enabled() and build.load("augment") is None
    monkeypatch.setenv(build.ENV_SWITCH, "1")
    assert build.enabled()
  finally:
    build.load.cache_clear()


def test_the_cache_folder_defaults_to_the_home_cache(monkeypatch):
  monkeypatch.delenv(build.ENV_CACHE, raising=False)
  assert build.cache_dir() == pathlib.Path.home() / ".cache" / "microexp" / "kernels"


def test_an_unwritable_cache_folder_falls_back_to_the_temp_dir(tmp_path, monkeypatch, caplog):
  blocker = tmp_path / "file"
  blocker.write_text("")  # a file where the cache folder's parent should be: mkdir fails
  monkeypatch.setenv(build.ENV_CACHE, str(blocker / "kernels"))
  with caplog.at_level("WARNING"):
    path = build.library_path("augment")
  assert path.exists() and not str(path).startswith(str(blocker))
  assert "Cannot use" in caplog.text
