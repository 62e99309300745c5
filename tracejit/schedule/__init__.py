"""Scheduling: Graph -> Kernel IR (`fusion.py`, `kernel.py`, `printer.py`)."""
