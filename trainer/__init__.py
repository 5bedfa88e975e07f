"""Staged GRPO on exported snapshots (files in, checkpoints and metrics out).

This package never imports Django, `lookfirst` or `workers`; tests/test_boundaries.py enforces it.
"""
