"""benchmarks/roofline.py on one tiny model: the pieces fit together (no timing asserted)."""

from __future__ import annotations

import pytest

from benchmarks import roofline


@pytest.mark.slow  # compiles the engine step 3 times (~20-90 s on a shared machine)
def test_roofline_table_for_a_tiny_ststnet():
  peaks = roofline.measure_peaks(1, n=128, copy_mib=4)
  assert peaks["flops"] > 0 and peaks["bytes"] > 0
  case = roofline.ModelCase("ststnet_megc", (28, 28, 3), 4)
  result = roofline.run([("ststnet", case)], [2], steps=1, repeats=1, budget_s=1e9,
                        log=lambda *_: None, peaks=peaks)
  (row,) = result["rows"]
  assert row["flops"] > 0 and row["bytes"] > 0
  assert row["flop_bound_s"] > 0 and row["xla_bytes_s"] > 0
  assert row["sequential_s"] > 0 and set(row["stacked_s"]) == {2}
  table = roofline.format_table(result)
  assert table.count("\n| ststnet |") == 1 and "2 stacked ms/fold" in table
  assert set(roofline.MODELS) >= {"ststnet", "offapexnet", "htnet", "flow_cnn", "resnet_reduced",
                                  "resnet50", "convlstm", "cnn_lstm"}


def test_conv_impl_flag_is_checked_before_anything_runs():
  with pytest.raises(ValueError, match="conv_impl must be one of"):
    roofline.main(["--models=ststnet", "--conv_impl=cudnn"])
