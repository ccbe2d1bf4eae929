"""Renderers: events and summaries to text (tabulate) and JSON Lines."""
