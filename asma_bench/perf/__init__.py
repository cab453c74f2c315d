"""Measurement tools: pretraining throughput (bench), the CI regression check and edge latency."""
