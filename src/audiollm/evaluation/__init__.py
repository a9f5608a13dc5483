"""Evaluation: a model × a manifest → per-task metrics, a table and JSON; `protocols` adds the
published scoring of benchmark datasets."""
