"""Offline relevance evaluation: judgments files and ranking metrics."""
