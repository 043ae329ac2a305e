"""The one registry type behind models, dataset loaders and face detectors."""

from __future__ import annotations

import pytest

from microexp.vision import face
from microexp import loaders
from microexp.registry import Registry


def test_register_get_names():
  reg = Registry("widget")
  reg.register("b")(int)
  reg.register("a")(str)
  assert reg.get("a") is str and reg.names() == ["a", "b"] and "b" in reg
  with pytest.raises(ValueError, match="Widget 'a' is registered twice"):
    reg.register("a")(float)
  with pytest.raises(ValueError, match=r"Unknown widget 'c'; registered: \['a', 'b'\]\."):
    reg.get("c")


def test_module_colon_name_imports_the_module(tmp_path, monkeypatch):
  reg = Registry("widget")
  (tmp_path / "my_widgets_for_test.py").write_text(
      "from tests.test_registry import REG\nREG.register('mine')(dict)\n")
  monkeypatch.setitem(globals(), "REG", reg)
  monkeypatch.syspath_prepend(str(tmp_path))
  assert reg.get("my_widgets_for_test:mine") is dict
  with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
    reg.get("no_such_module_xyz:mine")


def test_library_registries_list_their_names_when_the_name_is_unknown():
  assert {"casme2", "megc2019", "megc2019_flow", "casme3", "dfme", "samm", "smic"} <= set(
      loaders.names())
  with pytest.raises(ValueError, match=r"Unknown dataset 'casme9'; registered: \[.*'casme2'"):
    loaders.get("casme9")
  assert {"haar", "skin", "center", "none"} <= set(face.names())
  with pytest.raises(ValueError, match=r"Unknown face detector 'dlib'; registered: \[.*'haar'"):
    face.get("dlib")
