"""The "dfme" dataset of the registry: DFME apex flow (tfds_casme2/dfme).

Arrays: see `microexp.loaders.flow_datasets`, plus `split` str [N] ('train' | 'testA' | 'testB', the
official split) and `fps` float32 [N] (500, 300 or 200 per clip). `emotion` is DFME's own
(happiness, anger, contempt, disgust, fear, sadness, surprise): classes 'dfme_7' or 'dfme_3'.
With `config.dataset.splits` (e.g. ('train',)) only those sheets' clips are returned.
"""

from __future__ import annotations

from absl import logging
import numpy as np

from microexp.data import dfme
from microexp.synthetic import dfme as synthetic_dfme
from microexp.loaders import flow_datasets as apex_flow
from microexp.loaders import field
from microexp.loaders import register


# config.dataset fields read: apex_flow.load's, and `splits` here.
FIELDS = {"dfme": apex_flow.FIELDS + ("splits",)}


@register("dfme")
def load_dfme(dataset_config) -> dict[str, np.ndarray]:
  from tfds_casme2.dfme import dfme_dataset_builder  # pylint: disable=g-import-not-at-top
  arrays = apex_flow.load(dataset_config, name="dfme", builder_cls=dfme_dataset_builder.Builder,
                          write_synthetic=synthetic_dfme.write_synthetic_dfme,
                          extra_text=("split",), extra_fields=FIELDS["dfme"][len(apex_flow.FIELDS):])
  splits = field(dataset_config, "splits")
  if splits:
    unknown = sorted(set(splits) - set(dfme.SPLITS))
    if unknown:
      raise ValueError(f"config.dataset.splits: unknown {unknown}; choose from {dfme.SPLITS}.")
    keep = np.isin(arrays["split"], list(splits))
    arrays = {k: v[keep] for k, v in arrays.items()}
    logging.info("DFME: %d clips of the split(s) %s kept.", int(keep.sum()), list(splits))
  return arrays
