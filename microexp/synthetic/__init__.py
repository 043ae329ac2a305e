"""Synthetic datasets written in the official on-disk layouts."""
