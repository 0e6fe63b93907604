"""The CMT compound-word vocabulary: field order and class counts, identical to the reference.

A token is one row of 9 integers in model column order (see ../shared/reference/cmt-spec.md §1).
Columns 0-6 are predicted by the model; p_beat (7) is an input only; i_beat (8) only indexes the
sinusoidal position encoding.
"""

from __future__ import annotations

BARBEAT, TYPE, DENSITY, PITCH, DURATION, INSTR, STRENGTH, P_BEAT, I_BEAT = range(9)
N_FIELDS = 9
FIELD_NAMES: tuple[str, ...] = (
    "barbeat", "type", "density", "pitch", "duration", "instrument", "strength", "p_beat", "i_beat",
)
# Class counts per column; i_beat has no embedding (5025 is the reference's nominal bound).
N_CLASSES: tuple[int, ...] = (18, 3, 18, 129, 18, 6, 20, 102, 5025)
# The seven predicted fields (columns 0..6).
N_PREDICTED = 7

# Token types (column TYPE).
TYPE_EOS, TYPE_METRIC, TYPE_NOTE = 0, 1, 2
# Column BARBEAT: 17 marks a bar start, 1..16 a beat at slot v-1, 0 on notes.
BAR = 17

# Initial (conditioning) rows: (genre, key, instrument), seven of them.
N_INIT = 7
INIT_CLASSES: tuple[int, int, int] = (7, 1, 6)
# The position-encoding table length of the reference (rows indexed by i_beat).
MAX_SIXTEENTHS = 20000
