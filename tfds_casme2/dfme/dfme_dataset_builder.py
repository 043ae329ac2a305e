"""DFME (Zhao et al. 2023; MEGC 2022/2023) as a TFDS dataset: onset->apex flow of the face crops.

Built from the user's licensed copy with `microexp.data.dfme` (every fixed or dropped row is
logged). One 'train' TFDS split holding every clip of every sheet; the official split is the
`split` feature ('train' | 'testA' | 'testB') and each clip's frame rate the `fps` feature, so a
protocol can use either (LOSO inside 'train', or train on 'train' and test on 'testA').
"""

from __future__ import annotations

import pathlib

import tensorflow_datasets as tfds

from tfds_casme2 import apex_flow_base as apex_flow
from microexp.data import dfme
from microexp.data.emotions import DFME_EMOTIONS


class Builder(apex_flow.ApexFlowBuilder):
  """DatasetBuilder for DFME."""

  DATASET_TITLE = "DFME"
  EMOTIONS = DFME_EMOTIONS
  CROP_FACES = True
  HOMEPAGE = "https://mea-lab-421.github.io"
  CITATION = """\
@article{zhao2023dfme,
  title={{DFME}: A New Benchmark for Dynamic Facial Micro-expression Recognition},
  author={Zhao, Sirui and Tang, Huaying and Mao, Xinglong and Liu, Shifeng and Zhang, Yiming and
          Wang, Hao and Xu, Tong and Chen, Enhong},
  journal={IEEE Transactions on Affective Computing}, year={2023}}
"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  DFME is licensed: request it from https://mea-lab-421.github.io and unpack it so that manual_dir
  holds the label sheets and, up to 3 levels below it, one folder per clip named as its Filename:

    manual_dir/
      training_full_with_AU.xlsx  testA_full_with_AU.xlsx  testB_full_with_AU.xlsx  (any of them)
      <split or subject>/<Filename>/<frame>.jpg ...   (frame number at the end of each image name)

  Then: tfds build tfds_casme2/dfme --manual_dir=PATH --config=apex_flow
  """
  BUILDER_CONFIGS = apex_flow.builder_configs("DFME")

  def _extra_features(self):
    return dict(split=tfds.features.Text(doc="Official split of the clip's sheet: train, testA, "
                                         "testB."))

  def _list_clips(self, manual_dir: pathlib.Path):
    clips, report = dfme.list_clips(manual_dir)
    items = [apex_flow.flow_clip(c, f"{r.record.subject}/{r.record.filename}", apex_flow.clip_meta(
        c, clip_id=r.record.filename, fps=r.fps, split=r.split)) for c, r in clips]
    return items, report
