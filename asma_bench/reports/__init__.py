"""Reports: tables with significance tests, figures, latency."""
