"""megc2019_flow: the precomputed MEGC2019 onset->apex flow release (STSTNet / HTNet), 442 clips.

Reads the user's copy with `microexp.data.megc_flow` (all quirks handled and logged) and stores each
clip's 28x28 flow as uint8 (u, v, strain) — the PNG's RGB, never cv2's BGR — and HTNet's four
facial region centres (`region_centres`, (row, col) in the flow), found on the apex face crops
`combined_datasets_whole/` when the release has them, else the mean face (`region_source` says
which; microexp.vision.face_regions).
"""

from __future__ import annotations

from typing import Any, Iterator

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from microexp.data import megc_flow
from microexp.data.emotions import MEGC_CLASSES


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for the precomputed MEGC2019 flow release."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "1.1.0": "HTNet region centres (from combined_datasets_whole/ face crops)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the precomputed flow release (e.g. from the STSTNet / HTNet authors) so that manual_dir holds:
    manual_dir/
      combined_3class_gt.csv            (or combined_3_class2_for_optical_flow.csv; exactly one CSV)
      <subject>_<clip>.png ...          (442 images, 28x28; or in one sub-folder such as
                                         STSNet_whole_norm_u_v_os/)
      combined_datasets_whole/<imagename>.jpg   (optional: the HTNet release's apex face crops;
                                         without them HTNet uses mean-face regions)
  Per-subject pre-split copies (<subject>/u_train|u_test/<label>/) may stay; they are ignored.
  Then: tfds build tfds_casme2/megc2019_flow --manual_dir=PATH
  """

  def __init__(self, *, gt_csv: str | None = None, landmarker=None, **kwargs):
    """gt_csv: the ground-truth CSV if it is not the single CSV in manual_dir; landmarker: face
    crop -> landmarks (default `face_regions.box_landmarks`; a built dataset keeps its centres,
    so build into another data_dir to compare landmarkers)."""
    explicit_format = kwargs.get("file_format") is not None
    super().__init__(**kwargs)
    self._gt_csv = gt_csv
    self._landmarker = landmarker
    # array_record: random access without TensorFlow (tfds.data_source).
    if not explicit_format and not self.info.splits:
      self.info.set_file_format("array_record", override=True)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(dict(
            flow=tfds.features.Tensor(
                shape=(None, None, 3), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB,
                doc="Onset->apex flow (u, v, optical strain), each min-max scaled to 0..255."),
            label=tfds.features.ClassLabel(names=MEGC_CLASSES),
            dataset=tfds.features.Text(doc="'casme2' | 'samm' | 'smic'."),
            subject=tfds.features.Text(doc="Dataset-qualified: 'casme2/sub01', 'samm/006', "
                                           "'smic/s01'."),
            clip=tfds.features.Text(doc="'EP02_01f', '006_1_2', 's01_ne_01'."),
            region_centres=tfds.features.Tensor(
                shape=(4, 2), dtype=np.int32,
                doc="HTNet regions (left eye, right eye, left / right mouth corner): (row, col) "
                    "centres of 14x14 crops in the 28x28 flow."),
            region_source=tfds.features.Text(doc="'mean_face' or the landmarker's name."),
        )),
        supervised_keys=("flow", "label"),
        homepage="https://github.com/christy1206/STSTNet",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = epath.Path(dl_manager.manual_dir)
    records, flows, report = megc_flow.load_flow_set(root, self._gt_csv)
    centres, sources, notes = megc_flow.load_region_centres(
        root, records, landmarker=self._landmarker, size=flows.shape[1])
    report += notes
    logging.info("megc2019_flow at %s: %d clips; %d fixes:", root, len(records), len(report))
    for line in report:
      logging.info("  %s", line)
    return {"train": self._generate_examples(records, flows, centres, sources)}

  def _generate_examples(self, records, flows, centres,
                         sources) -> Iterator[tuple[str, dict[str, Any]]]:
    for record, flow, centre, source in zip(records, flows, centres, sources):
      yield f"{record.dataset}/{record.subject}/{record.clip}", dict(
          flow=flow, label=record.label, dataset=record.dataset,
          subject=record.qualified_subject, clip=record.clip, region_centres=centre,
          region_source=source)
