"""The composite loader: members' arrays concatenated, subjects qualified, AU vocabularies
united, emotions mapped to MEGC's classes; the shared fields go to the members that read them."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from configs import ststnet_lodo
from microexp import loaders
from microexp.loaders import composite


def _part(n, subjects, emotions, au_names, au, extra=None):
  return {"inputs": np.zeros((n, 4, 4, 3), np.float32), "emotion": np.array(emotions),
          "subject": np.array(subjects), "dataset": np.full(n, "x"),
          "clip": np.array([f"c{i}" for i in range(n)]), "au": np.asarray(au, np.float32),
          "au_names": np.tile(np.array(au_names, str)[None], (n, 1)) if au_names else
          np.zeros((n, 0), str), "fps": np.full(n, 30.0, np.float32), **(extra or {})}


def test_concatenate_counts_au_union_and_common_classes():
  parts = {
      "casme3": _part(2, ["spNO.1", "spNO.2"], ["happy", "others"], ["4", "12"], [[0, 1], [1, 0]]),
      "samm": _part(3, ["006", "006", "007"], ["anger", "contempt", "surprise"], ["1", "L12"],
                    [[1, 0], [0, 1], [1, 1]], {"split": np.full(3, "train")}),
      "smic": _part(1, ["s01"], ["positive"], [], np.zeros((1, 0))),
  }
  a = composite.concatenate(parts)
  assert len(a["inputs"]) == 6 and a["inputs"].shape == (6, 4, 4, 3)
  assert a["dataset"].tolist() == ["casme3"] * 2 + ["samm"] * 3 + ["smic"]
  assert a["subject"].tolist() == ["casme3/spNO.1", "casme3/spNO.2", "samm/006", "samm/006",
                                   "samm/007", "smic/s01"]
  assert a["clip"][2] == "samm/c0"
  # MEGC classes; 'others' has none and stays itself (the class subset drops it).
  assert a["emotion"].tolist() == ["positive", "others", "negative", "negative", "surprise",
                                   "positive"]
  assert a["source_emotion"].tolist()[:2] == ["happy", "others"]
  assert a["au_names"][0].tolist() == ["1", "4", "12", "L12"]
  np.testing.assert_array_equal(a["au"], [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1],
                                          [1, 0, 0, 1], [0, 0, 0, 0]])
  assert a["au_coded"].tolist() == [True] * 5 + [False]  # SMIC codes no AU
  assert "fps" in a and "split" not in a  # kept only where every member returns it


def test_concatenate_refuses_members_of_different_input_shapes():
  parts = {"a": _part(1, ["s"], ["happy"], [], np.zeros((1, 0))),
           "b": _part(1, ["s"], ["happy"], [], np.zeros((1, 0)))}
  parts["b"]["inputs"] = np.zeros((1, 8, 8, 3), np.float32)
  with pytest.raises(ValueError, match="differ in shape"):
    composite.concatenate(parts)


def test_member_configs_share_what_each_member_reads():
  config = ststnet_lodo.get_config("synthetic")
  members = {m.name: m for m in composite.member_configs(config.dataset)}
  assert list(members) == ["casme2", "casme3", "dfme", "samm", "smic"]
  for m in members.values():
    assert m.image_size == 28 and m.third_channel == "strain" and m.synthetic
  assert members["samm"].alignment == "landmarks" and "alignment" not in members["smic"]
  assert "alignment" not in members["casme2"]  # the CASME II loader does not read it
  assert members["casme2"].synthetic_kwargs.num_subjects == 4


def test_member_configs_accept_names_and_refuse_unread_shared_fields():
  ds = ml_collections.ConfigDict({"name": "composite", "members": ("smic", "samm"),
                                  "image_size": 28})
  assert [m.name for m in composite.member_configs(ds)] == ["samm", "smic"]
  ds.sequence = ml_collections.ConfigDict({"mode": "pad"})  # read by no member: not SHARED
  ds.members = ("smic",)
  ds.splits = ("train",)
  with pytest.raises(ValueError, match="composite: config.dataset.sequence is set"):
    composite.load_composite(ds)
  ds = ml_collections.ConfigDict({"name": "composite", "members": ("casme2",),
                                  "alignment": "landmarks"})
  with pytest.raises(ValueError, match="alignment is set but no member loader"):
    composite.member_configs(ds)
  ds = ml_collections.ConfigDict({"name": "composite", "members": ("smic", "smic")})
  with pytest.raises(ValueError, match="each dataset once"):
    composite.member_configs(ds)


@pytest.mark.slow
def test_synthetic_composite_loads_every_member_with_its_counts(tmp_path):
  config = ststnet_lodo.get_config("synthetic")
  ds = config.dataset
  ds.data_dir, ds.workers = str(tmp_path), 1
  for name in ("casme2", "dfme", "samm"):
    del ds.members[name]
  ds.members.casme3.synthetic_kwargs.update(num_subjects=2, clips_per_subject=3)
  ds.members.smic.synthetic_kwargs.update(num_subjects=2, clips_per_subject=3)
  a = composite.load_composite(ds)
  alone = {m.name: loaders.load(m) for m in composite.member_configs(ds)}  # cached builds
  assert sorted(set(a["dataset"])) == ["casme3", "smic"]
  for name, arrays in alone.items():
    sel = a["dataset"] == name
    assert sel.sum() == len(arrays["inputs"])
    assert a["subject"][sel].tolist() == [f"{name}/{s}" for s in arrays["subject"]]
    np.testing.assert_array_equal(a["inputs"][sel], arrays["inputs"])
  assert a["inputs"].shape[1:] == (28, 28, 3)
  # CAS(ME)^3's AUs are the union's columns; SMIC codes none.
  assert a["au_names"][0].tolist() == alone["casme3"]["au_names"][0].tolist()
  assert not a["au_coded"][a["dataset"] == "smic"].any() and not a["au"][a["dataset"] == "smic"].any()
  assert set(a["emotion"]) <= {"negative", "positive", "surprise", "others"}
