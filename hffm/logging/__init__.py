"""Metric sinks for the round loop: CSV/JSON files, wandb (offline by default), a progress display."""
