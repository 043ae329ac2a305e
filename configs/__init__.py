"""Experiment configs: one file per method, `get_config(arg)` with ':classes=..,synthetic'."""
