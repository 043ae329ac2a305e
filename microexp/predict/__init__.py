"""Prediction with a trained model: clips, sequences, long recordings."""
