"""A picture of a video analysis: why the music will do what it does.

Panels share one time axis (seconds, with bar boundaries shaded alternately):
1. motion: per-frame flow speed and each bar's mean, on a log scale, over the density thresholds;
2. density class per bar (what the music's note density will follow) and, with the music, the
   density it realised (onset slots + 1); a last bar cut short by the end, the share of its
   class it plays (dotted);
3. the impact envelope with the visual beats (coloured by strength class; hollow when the music
   has no onset on it) and cuts;
4. optionally, the generated notes as a piano roll on the same time axis;
5. optionally, the music's ducking gain under the video's own sound (`vbgm.duck`).
With the music, its section boundaries are drawn on every panel (green).
"""

from __future__ import annotations

import os

import numpy as np

from vbgm.atomic import atomic_path
from vbgm.controls import DENSITY_THRESHOLDS
from vbgm.song import SIXTEENTHS_PER_BAR, bar_length
from vbgm.structure import bar_share
from vbgm.video import VideoAnalysis

_INSTRUMENT_COLOURS = ("#444444", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
_INSTRUMENT_NAMES = ("drums", "piano", "guitar", "bass", "strings")


def plot_analysis(analysis: VideoAnalysis, path: str | os.PathLike[str],
                  notes: np.ndarray | None = None, sections: list[int] | None = None,
                  ducking: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Draw `analysis` (and, if given, a (N, 5) note array as in `vbgm.song`, the first bar
    of each of the music's sections, and the ducking curve: times in s, music gain in dB) to an
    image file.

    The format follows the suffix of `path` (PNG, SVG, PDF); the file is written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    a = analysis
    bar_s = 240.0 / a.tempo_bpm
    lead = a.start * a.sixteenth_s  # a pickup: bar 0 starts this long before the video
    end = max(a.duration_s, (a.n_sixteenths - a.start) * a.sixteenth_s)  # the music's end
    heights = [2.2, 1.3, 2.0] + ([2.2] if notes is not None else []) + \
        ([1.1] if ducking is not None else [])
    fig, axes = plt.subplots(len(heights), 1, sharex=True, figsize=(13, 1.7 * sum(heights) / 1.4),
                             gridspec_kw={"height_ratios": heights, "hspace": 0.12})
    ax_flow, ax_dens, ax_env = axes[:3]
    for ax in axes:
        for m in range(len(a.bars)):
            if m % 2:
                ax.axvspan(m * bar_s - lead, (m + 1) * bar_s - lead, color="#f0f0f0", zorder=0,
                           lw=0)
        ax.axvline(a.duration_s, color="#888888", lw=0.8, ls=":", zorder=1)
        for b in a.cuts:
            ax.axvline(b.time_s, color="#d62728", lw=1.2, ls="--", zorder=2)
        for m in (sections or [])[1:]:
            ax.axvline(m * bar_s - lead, color="#2ca02c", lw=2.0, alpha=0.7, zorder=1.5)
        ax.grid(axis="y", color="#dddddd", lw=0.5)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    ax_flow.set_xlim(0, end)

    # 1. Motion speed on a log axis, with the density thresholds it is compared with.
    floor = DENSITY_THRESHOLDS[0] / 3
    ax_flow.plot(a.frame_times, np.maximum(a.frame_flow, floor), color="#9ecae1", lw=0.8,
                 label="per frame")
    starts = np.array([b.start_s for b in a.bars] + [end])  # a last bar cut short ends there
    flows = np.array([max(b.flow, floor) for b in a.bars])
    ax_flow.stairs(flows, starts, color="#08519c", lw=2.0, label="bar mean")
    for t in DENSITY_THRESHOLDS:
        ax_flow.axhline(t, color="#bbbbbb", lw=0.4, zorder=0.5)
    ax_flow.set_yscale("log")
    top = max(DENSITY_THRESHOLDS[-1] * 1.5, float(np.max(a.frame_flow, initial=0)) * 1.2)
    ax_flow.set_ylim(floor, top)
    ax_flow.set_ylabel("flow speed\n(frame heights/s)")
    ax_flow.legend(loc="upper right", fontsize=8, frameon=False, ncol=2)

    # 2. Density class per bar.
    dens = np.array([b.density for b in a.bars])
    cmap = plt.get_cmap("viridis")
    widths = np.diff(starts) * 0.92
    middles = (np.maximum(starts[:-1], 0.0) + starts[:-1] + widths) / 2  # of what is seen
    ax_dens.bar(starts[:-1], dens, width=widths, align="edge",
                color=cmap((dens - 1) / 16), edgecolor="none")
    for b in a.bars:
        length = bar_length(a.n_sixteenths, b.index, a.start)
        label = str(b.density)
        if length < SIXTEENTHS_PER_BAR:  # a pickup, or cut short: it plays its share of the class
            share = 1 + bar_share(b.density - 1, length)
            ax_dens.hlines(share, b.start_s, b.start_s + widths[b.index], colors="#111111",
                           linestyles="dotted", lw=1.2, zorder=2.5)
            label = f"{b.density}: {share} in {length}/16"
        # A short last bar's label ends at the plot's edge rather than running past it.
        at_end = b.index == len(a.bars) - 1 and length < SIXTEENTHS_PER_BAR // 2
        ax_dens.text(end if at_end else middles[b.index], b.density + 0.4, label,
                     ha="right" if at_end else "center", va="bottom",
                     fontsize=7 if len(a.bars) > 40 else 8)
    onsets = np.unique(notes[:, 0]) if notes is not None and len(notes) else np.zeros(0, int)
    if notes is not None:
        got = np.bincount(onsets // 16, minlength=len(a.bars))[: len(a.bars)] + 1
        ax_dens.scatter(middles, got, marker="_", s=160, color="#111111",
                        lw=2.2, zorder=3, label="music (onset slots + 1)")
        ax_dens.legend(loc="lower right", bbox_to_anchor=(1.0, 0.98), fontsize=8, frameon=False)
    ax_dens.set_ylim(0, 19.5)
    ax_dens.set_yticks([1, 5, 9, 13, 17])
    ax_dens.set_ylabel("density\nclass (1-17)")

    # 3. Impact envelope, visual beats by strength, cuts.
    # Scale the envelope like the beat weights (1 = the strongest visual beat).
    visual = [b for b in a.beats if not b.is_cut]
    at_beats = np.interp([b.time_s for b in visual], a.frame_times, a.envelope)
    env_top = (max(e / b.weight for e, b in zip(at_beats, visual)) if visual
               else float(np.max(a.envelope, initial=0))) or 1.0
    env = np.minimum(a.envelope / env_top, 1.1)
    ax_env.fill_between(a.frame_times, env, color="#fdd0a2", lw=0)
    ax_env.plot(a.frame_times, env, color="#e6550d", lw=0.7)
    norm = colors.Normalize(0, 10)
    smap = cm.ScalarMappable(norm=norm, cmap="magma_r")
    for b in a.beats:
        if b.is_cut:
            continue
        ax_env.vlines(b.time_s, 0, b.weight, color=smap.to_rgba(b.strength), lw=1.6)
        hit = notes is None or b.strength == 0 or b.sixteenth in onsets
        colour = smap.to_rgba(b.strength)
        ax_env.scatter([b.time_s], [b.weight], s=22 if hit else 30, zorder=3,
                       color=colour if hit else "white", edgecolor="white" if hit else colour,
                       lw=0.5 if hit else 1.4)
    cuts = [b.time_s for b in a.cuts]
    if cuts:
        ax_env.scatter(cuts, [1.12] * len(cuts), marker="v", s=40, color="#d62728", zorder=3)
    ax_env.set_ylim(0, 1.2)
    ax_env.set_ylabel("impact\n(● beat ○ missed\n▼ cut)" if notes is not None
                      else "impact\n(● beat ▼ cut)")
    cbar = fig.colorbar(smap, ax=list(axes), pad=0.01, fraction=0.02, aspect=40)
    cbar.set_label("beat strength class")

    # 4. Optional piano roll: onset/duration in sixteenths → seconds.
    if notes is not None:
        ax_roll = axes[3]
        s16 = 15.0 / a.tempo_bpm
        for k, (name, col) in enumerate(zip(_INSTRUMENT_NAMES, _INSTRUMENT_COLOURS), start=1):
            sel = notes[notes[:, 3] == k] if len(notes) else notes
            if len(sel) == 0:
                continue
            ax_roll.barh(sel[:, 2], sel[:, 1] * s16, left=(sel[:, 0] - a.start) * s16, height=0.9,
                         color=col, alpha=0.75, label=name, lw=0)
        ax_roll.set_ylabel("pitch")
        if len(notes):
            ax_roll.legend(loc="upper right", fontsize=8, frameon=False, ncol=5)

    # 5. Optional ducking curve: the music's gain under the video's own loud sound.
    if ducking is not None:
        ax_duck = axes[-1]
        times, gain_db = ducking
        ax_duck.fill_between(times, gain_db, 0, color="#c6dbef", lw=0)
        ax_duck.plot(times, gain_db, color="#08519c", lw=1.0)
        ax_duck.set_ylim(min(float(np.min(gain_db, initial=0)), -1.0) * 1.15, 1.0)
        ax_duck.set_ylabel("music gain\n(dB, ducked)")
    axes[-1].set_xlabel("time (s)")

    # Bar numbers along the top.
    top_ax = ax_flow.secondary_xaxis("top")
    step = max(1, len(a.bars) // 24)
    top_ax.set_xticks([(max(starts[m], 0.0) + starts[m + 1]) / 2  # of what is seen
                       for m in range(0, len(a.bars), step)],
                      [str(m) for m in range(0, len(a.bars), step)], fontsize=7)
    top_ax.tick_params(length=0)
    top_ax.set_xlabel("bar", fontsize=8)

    n_cuts = len(a.cuts)
    fig.suptitle(
        f"{a.source}  ·  {a.duration_s:.1f} s, {a.fps:.2f} fps, {a.width}×{a.height}  ·  "
        f"{a.tempo_bpm:g} bpm ({a.tempo_source}), {len(a.bars)} bars{a.pickup_text}, "
        f"{len(a.beats) - n_cuts} visual beats, {n_cuts} cuts",
        fontsize=11, x=0.45, y=0.995)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
