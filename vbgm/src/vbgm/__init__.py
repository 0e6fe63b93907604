"""vbgm: video background music generation with a controllable compound-word transformer (CMT)."""

__version__ = "0.1.0"

from vbgm.api import score_video as score_video  # noqa: E402  (see vbgm.api)
