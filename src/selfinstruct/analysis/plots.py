"""The report's figures, drawn with matplotlib (static, offline; the same figure goes inline as SVG and to
PNG/SVG files). Labels come from LM output, so mathtext parsing is off: a `$` stays a dollar sign."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from selfinstruct.analysis.stats import FunnelStep
from selfinstruct.analysis.verbs import VerbNounSummary

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType, RGBAColorType

_RC: dict[RcKeyType, Any] = {
    "text.parse_math": False,
    "svg.fonttype": "path",  # text as outlines: the SVG carries no LM text as markup
    "svg.hashsalt": "selfinstruct",  # stable ids, reproducible files
    "font.size": 9,
}


FORMATS = ("png", "svg")


def render(fig: Figure, formats: Sequence[str]) -> dict[str, bytes]:
    """The figure in each of `formats` (png, svg); closes it."""
    out: dict[str, bytes] = {}
    try:
        for fmt in formats:
            if fmt not in FORMATS:
                raise ValueError(f"unknown figure format {fmt!r}")
            buf = io.BytesIO()
            with matplotlib.rc_context(_RC):
                fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight", metadata=_meta(fmt))
            out[fmt] = buf.getvalue()
    finally:
        plt.close(fig)
    return out


def _meta(fmt: str) -> dict[str, str | None]:
    # No creation date: the same data gives the same file.
    return {"Date": None} if fmt == "svg" else {}


def _new(width: float, height: float) -> tuple[Figure, Axes]:
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def sunburst(summary: VerbNounSummary) -> Figure:
    """Inner ring: top verbs; outer ring: each verb's top nouns (the rest of the verb's pairs left blank)."""
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8, 8))
        cmap = plt.get_cmap("tab20")
        verbs = [v.verb for v in summary.top]
        sizes = [v.count for v in summary.top]
        colors = [cmap(i % 20) for i in range(len(verbs))]
        if not sizes:
            ax.text(0.5, 0.5, "no verb–noun pairs", ha="center", va="center", transform=ax.transAxes)
            ax.axis("off")
            return fig
        outer_sizes: list[int] = []
        outer_labels: list[str] = []
        outer_colors: list[RGBAColorType] = []
        for v, color in zip(summary.top, colors, strict=True):
            shown = 0
            for noun, count in v.nouns:
                outer_sizes.append(count)
                outer_labels.append(noun)
                outer_colors.append((*color[:3], 0.55))
                shown += count
            if v.count > shown:
                outer_sizes.append(v.count - shown)
                outer_labels.append("")
                outer_colors.append((1, 1, 1, 0))
        ax.pie(
            outer_sizes,
            radius=1.0,
            labels=outer_labels,
            labeldistance=0.82,
            rotatelabels=True,
            colors=outer_colors,
            startangle=90,
            counterclock=False,
            wedgeprops={"width": 0.35, "edgecolor": "white", "linewidth": 0.5},
            textprops={"fontsize": 6},
        )
        ax.pie(
            sizes,
            radius=0.65,
            labels=verbs,
            labeldistance=0.62,
            rotatelabels=True,
            colors=colors,
            startangle=90,
            counterclock=False,
            wedgeprops={"width": 0.4, "edgecolor": "white", "linewidth": 0.8},
            textprops={"fontsize": 7, "fontweight": "bold"},
        )
        ax.set_aspect("equal")
        ax.set_title(f"Top {len(verbs)} root verbs and their top direct-object nouns")
    return fig


def rouge_histogram(scores: Sequence[float]) -> Figure:
    fig, ax = _new(7, 3.5)
    with matplotlib.rc_context(_RC):
        ax.hist(list(scores), bins=[i / 20 for i in range(21)], color="#4c72b0", edgecolor="white")
        ax.set_xlim(0, 1)
        ax.set_xlabel("ROUGE-L F with the most similar seed instruction")
        ax.set_ylabel("# instructions")
        ax.set_title("Overlap of generated instructions with the seed instructions")
    return fig


def length_histograms(lengths: dict[str, Sequence[int]], clip_quantile: float = 0.99) -> Figure:
    """One panel per field; values above the 99th percentile are gathered into the last bin."""
    with matplotlib.rc_context(_RC):
        fig, axes = plt.subplots(1, len(lengths), figsize=(4 * len(lengths), 3.2), squeeze=False)
        for ax, (name, values) in zip(axes[0], lengths.items(), strict=True):
            data = sorted(values)
            if not data:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
                ax.set_title(name)
                continue
            cap = max(1, data[min(len(data) - 1, int(clip_quantile * (len(data) - 1)))])
            clipped = [min(v, cap) for v in data]
            width = -(-(cap + 1) // 40)  # whole words per bin, at most about 40 bins
            edges = list(range(0, cap + width + 1, width))
            ax.hist(clipped, bins=edges, color="#55a868", edgecolor="white")
            ax.set_title(name)
            ax.set_xlabel(f"words (last bin: {cap}+)" if cap < data[-1] else "words")
            ax.set_ylabel("count")
        fig.tight_layout()
    return fig


def funnel_chart(steps: Sequence[FunnelStep], title: str) -> Figure:
    fig, ax = _new(7, 0.35 * max(3, len(steps)) + 1)
    with matplotlib.rc_context(_RC):
        names = [s.verdict for s in steps]
        counts = [s.count for s in steps]
        colors = ["#55a868" if s.verdict == "kept" else "#c44e52" for s in steps]
        ax.barh(range(len(steps)), counts, color=colors)
        ax.set_yticks(range(len(steps)), names)
        ax.invert_yaxis()
        for i, s in enumerate(steps):
            ax.text(s.count, i, f" {s.count:,} ({100 * s.share:.1f}%)", va="center", fontsize=8)
        ax.set_xlabel("count")
        ax.set_title(title)
        ax.margins(x=0.25)
    return fig
