"""Evaluation: a closed window's summaries through its detectors, into result records."""
