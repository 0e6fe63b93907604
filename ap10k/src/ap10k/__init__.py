"""ap10k: the AP-10K animal pose benchmark toolkit."""

__version__ = "0.1.0"
