"""`vbgm study report`: the paper's Table 2 from the stored answers.

Per system: the mean and 95 % confidence interval (Student t) of each question, of the two
groups (Melodiousness, Compatibility: a version's mean over the group's three questions on a
page), and of the rank. The unit is a page: one participant's answers for one video. Tests: the
Friedman test on the ranks (k systems ranked on each page; ranks never tie, so the statistic is
12/(n k (k+1)) * sum R_j^2 - 3 n (k+1), chi-square with k-1 degrees of freedom) and, per measure,
the pairwise Wilcoxon signed-rank tests over pages with Holm's correction within the measure's
k(k-1)/2 pairs.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import stats

from vbgm.errors import VbgmError
from vbgm.study import design
from vbgm.study.manifest import ANSWERS, load
from vbgm.study.store import Store

MEASURES: tuple[tuple[str, str], ...] = (
    ("melodiousness", "Melodiousness"),
    *((q.key, f"  {q.label}") for q in design.QUESTIONS if q.group == "melodiousness"),
    ("compatibility", "Compatibility"),
    *((q.key, f"  {q.label}") for q in design.QUESTIONS if q.group == "compatibility"),
    ("rank", "Rank (1 = best)"),
)
TESTED = ("melodiousness", "compatibility", "rank")  # measures with pairwise tests
GROUP_SIZE = {g: sum(q.group == g for q in design.QUESTIONS) for g in design.GROUPS}


@dataclass(frozen=True)
class Cell:
    """Mean and 95 % CI half-width of one measure for one system over n pages."""

    n: int
    mean: float
    ci95: float


@dataclass(frozen=True)
class Pairwise:
    """A Wilcoxon signed-rank test of two systems on one measure, with Holm's p."""

    measure: str
    a: str
    b: str
    n: int
    statistic: float
    p: float
    p_holm: float


@dataclass(frozen=True)
class Report:
    """Table 2: cells[measure][system], the Friedman test on the ranks, the pairwise tests."""

    systems: list[str]
    participants: int
    pages: int
    cells: dict[str, dict[str, Cell]]
    friedman: tuple[float, int, float]  # (chi-square, degrees of freedom, p)
    pairwise: list[Pairwise]


def mean_ci(values: list[float]) -> Cell:
    """Mean and the half-width of its 95 % Student-t confidence interval (nan for n < 2)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Cell(0, math.nan, math.nan)
    if n < 2:
        return Cell(1, float(x.mean()), math.nan)
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Cell(n, float(x.mean()), half)


def friedman(ranks: np.ndarray) -> tuple[float, int, float]:
    """Friedman test of an (n pages, k systems) table of within-page ranks 1..k (no ties):
    (chi-square, k - 1, p)."""
    n, k = ranks.shape
    if n == 0 or k < 2:
        return math.nan, max(k - 1, 0), math.nan
    sums = ranks.sum(axis=0)
    chi2 = 12.0 / (n * k * (k + 1)) * float((sums**2).sum()) - 3.0 * n * (k + 1)
    return chi2, k - 1, float(stats.chi2.sf(chi2, k - 1))


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order (nan stays nan)."""
    order = sorted((i for i in range(len(p)) if not math.isnan(p[i])), key=lambda i: p[i])
    m, out, running = len(order), [math.nan] * len(p), 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def wilcoxon(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired samples: (statistic, p); no difference
    at all gives (0, 1) and fewer than two pairs (nan, nan)."""
    if len(a) < 2:
        return math.nan, math.nan
    if np.allclose(a, b):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that small samples use the exact test
        res = stats.wilcoxon(a, b)
    return float(res.statistic), float(res.pvalue)


def page_table(rows: list[dict[str, object]], systems: list[str]) -> dict[str, np.ndarray]:
    """Stored rating rows → measure → (pages, systems) array, one row per answered page."""
    pages: dict[tuple[object, object], dict[str, dict[str, object]]] = {}
    for r in rows:
        pages.setdefault((r["participant"], r["video"]), {})[str(r["system"])] = r
    complete = [p for p in pages.values() if all(s in p for s in systems)]
    table: dict[str, np.ndarray] = {}
    for key in (*design.QUESTION_KEYS, "rank"):
        table[key] = np.array([[float(p[s][key]) for s in systems] for p in complete],
                              dtype=float).reshape(len(complete), len(systems))
    for group in design.GROUPS:
        keys = [q.key for q in design.QUESTIONS if q.group == group]
        table[group] = np.mean([table[k] for k in keys], axis=0)
    return table


def compute(rows: list[dict[str, object]], systems: list[str]) -> Report:
    """Table 2 and its tests from rating rows (as `Store.ratings()` returns them)."""
    table = page_table(rows, systems)
    cells = {m: {s: mean_ci(list(table[m][:, j])) for j, s in enumerate(systems)}
             for m, _ in MEASURES}
    pairwise = []
    for m in TESTED:
        # A group's score is a mean of three integers; the test is scale-invariant, so it runs on
        # the integer sums, where equal differences (ties) are exactly equal.
        x = np.rint(table[m] * GROUP_SIZE[m]) if m in GROUP_SIZE else table[m]
        tests = [(a, b, *wilcoxon(x[:, i], x[:, j]))
                 for (i, a), (j, b) in combinations(enumerate(systems), 2)]
        adjusted = holm([t[3] for t in tests])
        pairwise += [Pairwise(m, a, b, len(table[m]), w, p, ph)
                     for (a, b, w, p), ph in zip(tests, adjusted, strict=True)]
    people = len({r["participant"] for r in rows})
    return Report(systems, people, len(table["rank"]), cells, friedman(table["rank"]),
                  pairwise)


def load_report(study: Path) -> Report:
    """Compute the report of a study folder; no answers yet is a VbgmError."""
    manifest = load(study)
    if not (study / ANSWERS).is_file():
        raise VbgmError(f"{study / ANSWERS}: no answers yet (run `vbgm study serve {study}`)")
    rows = Store(study, manifest).ratings()
    if not rows:
        raise VbgmError(f"{study / ANSWERS}: no page has been answered yet")
    return compute(rows, manifest.systems)


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "n/a" if math.isnan(x) else (f"{x:.3g}" if x >= 0.001 else "<0.001")


def to_markdown(r: Report) -> str:
    """Table 2 and the tests as markdown."""
    lines = [f"Listening study: {r.participants} participants, {r.pages} pages "
             f"(participant x video); mean ± 95 % CI, ratings 1-5 (higher is better), "
             f"rank 1 = best.", "",
             "| | " + " | ".join(r.systems) + " |", "|---|" + "---:|" * len(r.systems)]
    for m, label in MEASURES:
        cells = [f"{_fmt(c.mean)} ± {_fmt(c.ci95)}" for c in r.cells[m].values()]
        name = f"**{label}**" if not label.startswith(" ") else label.strip()
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    chi2, df, p = r.friedman
    lines += ["", f"Friedman test on the ranks: chi2({df}) = {_fmt(chi2, 3)}, p = {_p(p)} "
              f"(n = {r.pages} pages).", "",
              "| measure | pair | n | W | p | p (Holm) |", "|---|---|---:|---:|---:|---:|"]
    for t in r.pairwise:
        lines.append(f"| {t.measure} | {t.a} vs {t.b} | {t.n} | {_fmt(t.statistic, 1)} | "
                     f"{_p(t.p)} | {_p(t.p_holm)} |")
    return "\n".join(lines) + "\n"


def to_csv(r: Report) -> str:
    """The same numbers as CSV, one row per cell or test (column `kind`: score, friedman,
    wilcoxon)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "measure", "system", "versus", "n", "mean", "ci95", "statistic", "df",
                "p", "p_holm"])
    for m, _ in MEASURES:
        for s, c in r.cells[m].items():
            w.writerow(["score", m, s, "", c.n, f"{c.mean:.6g}", f"{c.ci95:.6g}", "", "", "",
                        ""])
    chi2, df, p = r.friedman
    w.writerow(["friedman", "rank", "", "", r.pages, "", "", f"{chi2:.6g}", df, f"{p:.6g}", ""])
    for t in r.pairwise:
        w.writerow(["wilcoxon", t.measure, t.a, t.b, t.n, "", "", f"{t.statistic:.6g}", "",
                    f"{t.p:.6g}", f"{t.p_holm:.6g}"])
    return buf.getvalue()


def plot(r: Report, out: Path) -> None:
    """Bars with 95 % CIs: Melodiousness and Compatibility per system, and the mean rank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vbgm.atomic import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), width_ratios=(2, 1))
    x = np.arange(2)
    width = 0.8 / len(r.systems)
    for j, s in enumerate(r.systems):
        cells = [r.cells[g][s] for g in design.GROUPS]
        ax1.bar(x + (j - (len(r.systems) - 1) / 2) * width, [c.mean for c in cells], width,
                yerr=[0 if math.isnan(c.ci95) else c.ci95 for c in cells], capsize=3, label=s)
    ax1.set_xticks(x, [g.capitalize() for g in design.GROUPS])
    ax1.set_ylim(1, 5)
    ax1.set_ylabel("rating (1-5)")
    ax1.legend(fontsize=8)
    ranks = [r.cells["rank"][s] for s in r.systems]
    ax2.bar(r.systems, [c.mean for c in ranks],
            yerr=[0 if math.isnan(c.ci95) else c.ci95 for c in ranks], capsize=3,
            color=[f"C{j}" for j in range(len(r.systems))])
    ax2.set_ylim(0, len(r.systems))
    ax2.set_ylabel("mean rank (lower is better)")
    fig.suptitle(f"Listening study ({r.participants} participants, {r.pages} pages)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
