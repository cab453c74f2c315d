"""Reports: tables with significance tests, figures, HTML."""
