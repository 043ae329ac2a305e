"""The "composite" dataset of the registry: several registered datasets as one.

    config.dataset.name = 'composite'
    config.dataset.members = ('casme2', 'samm', ConfigDict(name='dfme', splits=('train',)), ...)
        # or a ConfigDict {member name: its own fields}
    config.dataset.classes = 'megc'

Each member is loaded by its own loader with the composite's *shared* fields (`SHARED`: image
size, flow settings, synthetic, data_dir, ...) under its own (`manual_dir`, `synthetic_kwargs`,
DFME's `splits`, ...). A shared field goes to every member whose loader reads it; one that no member
reads is refused, as every loader refuses an unread field.

Arrays (docs/ARCHITECTURE.md): the members' arrays concatenated (members in sorted name order),
with `dataset` the member name, `subject` and `clip` dataset-qualified ('casme2/sub01'),
`emotion` mapped to the common classes (`common_classes`, default 'megc': each member's emotion
becomes its MEGC class name; emotions outside it, e.g. 'others', are kept as they are and left to
`config.dataset.classes`), `source_emotion` the member's own emotion, `au` / `au_names` over the
union of the members' AU vocabularies (zero where a member never codes that AU), `au_coded` bool
[N] (False for a member that codes no AU at all, e.g. SMIC: its zeros mean "not coded"). Other
arrays are kept where every member returns them.
"""

from __future__ import annotations

import sys
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from microexp import loaders
from microexp.data import action_units as au_lib
from microexp.data import emotions as emotions_lib

# Fields passed on to every member loader that reads them.
SHARED = ("representation", "synthetic", "data_dir", "image_size", "flow_method", "flow_kwargs",
          "third_channel", "flow_normalization", "au_sides", "workers", "alignment")
FIELDS = {"composite": SHARED + ("members", "common_classes")}


def member_fields(name: str) -> tuple[str, ...]:
  """The config.dataset fields the loader registered as `name` reads (its module's FIELDS)."""
  return tuple(sys.modules[loaders.get(name).__module__].FIELDS[name])


def _as_dict(value) -> dict[str, Any]:
  if hasattr(value, "to_dict"):
    return value.to_dict()
  return dict(value)


def member_configs(dataset_config) -> list[ml_collections.ConfigDict]:
  """`config.dataset` of a composite -> one dataset ConfigDict per member, sorted by name."""
  members = loaders.field(dataset_config, "members", ())
  if hasattr(members, "keys"):  # {name: fields}
    items = [{"name": k, **_as_dict(v)} for k, v in _as_dict(members).items()]
  else:
    items = [{"name": m} if isinstance(m, str) else _as_dict(m) for m in members]
  if len(items) < 1 or any(not i.get("name") for i in items):
    raise ValueError("composite: config.dataset.members must name at least one dataset (a name, "
                     f"or a ConfigDict with a `name`); got {members!r}.")
  names = [i["name"] for i in items]
  if len(set(names)) != len(names) or "composite" in names:
    raise ValueError(f"composite: config.dataset.members {names}: each dataset once, no composite.")
  shared = {k: loaders.field(dataset_config, k) for k in SHARED}
  shared = {k: (_as_dict(v) if hasattr(v, "to_dict") else v) for k, v in shared.items()
            if not loaders._empty(v)}  # pylint: disable=protected-access
  unread = [k for k in shared if not any(k in member_fields(n) for n in names)]
  if unread:
    raise ValueError(f"composite: config.dataset.{unread[0]} is set but no member loader "
                     f"({', '.join(names)}) reads it; remove it.")
  out = []
  for item in sorted(items, key=lambda i: i["name"]):
    reads = member_fields(item["name"])
    out.append(ml_collections.ConfigDict(
        {**{k: v for k, v in shared.items() if k in reads}, **item}))
  return out


def _common_emotion(emotion: np.ndarray, common: str) -> np.ndarray:
  subset = emotions_lib.get_subset(common)
  labels, keep = subset.map_emotions(emotion)
  names = np.array(subset.class_names)
  return np.where(keep, names[np.maximum(labels, 0)], np.char.lower(emotion.astype(str)))


def concatenate(parts: dict[str, dict[str, np.ndarray]], *, common_classes: str = "megc",
                ) -> dict[str, np.ndarray]:
  """{member name: its arrays} -> the composite's arrays (module doc)."""
  shapes = {n: a["inputs"].shape[1:] for n, a in parts.items()}
  if len(set(shapes.values())) > 1:
    raise ValueError(f"composite: the members' inputs differ in shape {shapes}; give them the "
                     "same image_size / representation.")
  union = sorted({str(a) for p in parts.values() for a in p["au_names"][:1].ravel()})
  # The members' names are parsed AU names already: sides=True keeps 'L12' a column of its own.
  vocab = list(au_lib.au_multi_hot([union], sides=True)[1]) if union else []
  column = {a: i for i, a in enumerate(vocab)}
  optional = set.intersection(*(set(p) for p in parts.values())) - {
      "inputs", "emotion", "subject", "dataset", "clip", "au", "au_names"}
  dropped = sorted(set.union(*(set(p) for p in parts.values())) - optional - {
      "inputs", "emotion", "subject", "dataset", "clip", "au", "au_names"})
  if dropped:
    logging.info("composite: arrays not returned by every member dropped: %s", dropped)
  out = {k: [] for k in ("inputs", "emotion", "source_emotion", "subject", "dataset", "clip", "au",
                         "au_coded", *sorted(optional))}
  for name, p in parts.items():
    n = len(p["inputs"])
    out["inputs"].append(np.asarray(p["inputs"], np.float32))
    out["emotion"].append(_common_emotion(np.asarray(p["emotion"]), common_classes))
    out["source_emotion"].append(np.asarray(p["emotion"]).astype(str))
    out["dataset"].append(np.full(n, name))
    out["subject"].append(loaders.qualified_subjects(p["subject"], [name] * n))
    out["clip"].append(loaders.qualified_subjects(p.get("clip", np.arange(n)).astype(str),
                                                    [name] * n))
    au = np.zeros((n, len(vocab)), np.float32)
    names = [str(a) for a in p["au_names"][0]] if n and p["au_names"].shape[1] else []
    au[:, [column[a] for a in names]] = p["au"]
    out["au"].append(au)
    out["au_coded"].append(np.full(n, bool(names)))
    for k in optional:
      out[k].append(np.asarray(p[k]))
  arrays = {k: np.concatenate(v) for k, v in out.items()}
  arrays["au_names"] = np.tile(np.array(vocab, str)[None], (len(arrays["inputs"]), 1))
  return arrays


@loaders.register("composite")
def load_composite(dataset_config) -> dict[str, np.ndarray]:
  """`config.dataset` (module doc) -> the composite's arrays."""
  loaders.check_fields(dataset_config, "composite", FIELDS["composite"])
  common = loaders.field(dataset_config, "common_classes", "megc")
  parts = {}
  for member in member_configs(dataset_config):
    parts[member.name] = loaders.load(member)
  arrays = concatenate(parts, common_classes=common)
  logging.info("composite of %s: %d clips, %d subjects, %d AUs %s", list(parts),
               len(arrays["inputs"]), len(set(arrays["subject"].tolist())),
               arrays["au"].shape[1], arrays["au_names"][0].tolist() if len(arrays["au"]) else [])
  for name in parts:
    sel = arrays["dataset"] == name
    counts = {e: int((arrays["emotion"][sel] == e).sum()) for e in sorted(set(
        arrays["emotion"][sel].tolist()))}
    logging.info("  %-8s %4d clips, %3d subjects, emotions %s", name, int(sel.sum()),
                 len(set(arrays["subject"][sel].tolist())), counts)
  return arrays
