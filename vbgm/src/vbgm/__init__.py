"""vbgm: video background music generation with a controllable compound-word transformer (CMT)."""

__version__ = "0.1.0"
