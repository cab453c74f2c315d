"""Data layer: skeleton layouts, dataset readers, the canonical store, synthetic data, feeder."""
