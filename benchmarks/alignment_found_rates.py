"""Prints face-found rates per alignment method on the synthetic trees of the uncropped datasets.

  python benchmarks/alignment_found_rates.py [--face=96,80] [--out=/tmp/alignment_rates]

For each synthetic tree (CAS(ME)^3 and DFME with their configs' synthetic sizes, SAMM with the
loader's default) and each alignment the apex-flow builders run ('landmarks', 'box'), every
clip's onset / apex pair goes through `microexp.vision.align.estimate_clip` exactly as the builder's
`pair_flow` does; printed: the builder's build-log line (`tfds_casme2.apex_flow_base.found_report`),
i.e. clips per method that ran and per detector, and the seconds per clip (noisy, shared machine).
`--face` sets the synthetic face size (H, W) in pixels.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--face", default="96,80", help="synthetic face H,W px")
  parser.add_argument("--out", default=None, help="where the synthetic trees are written")
  args = parser.parse_args()

  from microexp.vision import align  # pylint: disable=g-import-not-at-top
  from microexp.data import casme2  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import casme3 as synthetic_casme3  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import dfme as synthetic_dfme  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import megc as synthetic_megc  # pylint: disable=g-import-not-at-top
  from tfds_casme2 import apex_flow_base as apex_flow  # pylint: disable=g-import-not-at-top
  from tfds_casme2.casme3 import casme3_dataset_builder  # pylint: disable=g-import-not-at-top
  from tfds_casme2.dfme import dfme_dataset_builder  # pylint: disable=g-import-not-at-top
  from tfds_casme2.samm import samm_dataset_builder  # pylint: disable=g-import-not-at-top

  face = tuple(int(v) for v in args.face.split(","))
  out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="alignment_rates_"))
  trees = {  # the synthetic sizes of configs/ststnet_casme3.py, ststnet_dfme.py; samm's default
      "CAS(ME)^3": (casme3_dataset_builder.Builder, synthetic_casme3.write_synthetic_casme3,
                    dict(num_subjects=6, clips_per_subject=7)),
      "DFME": (dfme_dataset_builder.Builder, synthetic_dfme.write_synthetic_dfme,
               dict(num_subjects=(6, 2, 2), clips_per_subject=7)),
      "SAMM": (samm_dataset_builder.Builder, synthetic_megc.write_synthetic_samm, {}),
  }
  print(f"dlib landmarks available: {align.available()}; synthetic face {face[0]}x{face[1]} px")
  for title, (builder_cls, write, kwargs) in trees.items():
    root = write(out / f"{builder_cls.name}_{face[0]}x{face[1]}", image_size=face, **kwargs)
    clips, _ = builder_cls(config="apex_flow", data_dir=str(out / "unused"))._list_clips(root)  # pylint: disable=protected-access
    pairs = [casme2.read_frames([c.onset_path, c.apex_path]) for c in clips]
    frame = pairs[0].shape[1:3]
    for method in ("landmarks", "box"):
      found: dict[tuple[str, str], int] = {}
      start = time.perf_counter()
      for pair in pairs:
        aligned = align.estimate_clip(pair, method)
        key = (aligned.method, aligned.face.detector)
        found[key] = found.get(key, 0) + 1
      seconds = (time.perf_counter() - start) / len(pairs)
      print(f"{title:10s} {len(pairs):3d} clips, frames {frame[1]}x{frame[0]}: "
            f"{apex_flow.found_report(found, method)}; {seconds * 1000:.0f} ms/clip")


if __name__ == "__main__":
  main()
