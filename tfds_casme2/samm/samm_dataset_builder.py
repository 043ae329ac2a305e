"""SAMM (Davison et al. 2018) as a TFDS dataset: onset->apex flow of the face crops.

Read with `microexp.data.samm` (the sheet's title rows, numeric subjects, uncoded apexes spotted
from the flow, macro rows dropped; every fix logged). Frames are uncropped (2040x1088): one face
box per clip is found on the onset frame (`tfds_casme2.apex_flow_base`). The MEGC2019 composite
(`microexp.loaders.megc_frames`) reads the same folders and computes its flow in memory instead.
"""

from __future__ import annotations

import pathlib

from tfds_casme2 import apex_flow_base as apex_flow
from microexp.data import samm

FPS = 200


class Builder(apex_flow.ApexFlowBuilder):
  """DatasetBuilder for SAMM (micro-movements)."""

  DATASET_TITLE = "SAMM"
  EMOTIONS = samm.SAMM_EMOTIONS
  CROP_FACES = True
  HOMEPAGE = "http://www2.docm.mmu.ac.uk/STAFF/m.yap/dataset.php"
  CITATION = """\
@article{davison2018samm,
  title={{SAMM}: A Spontaneous Micro-Facial Movement Dataset},
  author={Davison, Adrian K. and Lansley, Cliff and Costen, Nicholas and Tan, Kevin and
          Yap, Moi Hoon},
  journal={IEEE Transactions on Affective Computing}, volume={9}, number={1}, year={2018}}
"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  SAMM is licensed: request it from its authors and unpack it so that manual_dir holds:

    manual_dir/
      SAMM_Micro_FACS_Codes_v2.xlsx          # the coding sheet (the only .xlsx there)
      006/006_1_2/006_05562.jpg ...          # <subject>/<Filename>/<subject>_<frame>.jpg

  Then: tfds build tfds_casme2/samm --manual_dir=PATH --config=apex_flow
  """
  BUILDER_CONFIGS = apex_flow.builder_configs("SAMM")

  def _list_clips(self, manual_dir: pathlib.Path):
    clips, report = samm.list_clips(manual_dir)
    items = [apex_flow.flow_clip(c, f"{c.record.subject}/{c.record.filename}",
                                 apex_flow.clip_meta(c, clip_id=c.record.filename, fps=FPS))
             for c in clips]
    return items, report
