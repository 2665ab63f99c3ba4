"""Runs: run folders, checkpoints, evaluation, logging, summaries and plots."""
