"""Draws the figures of bench/prefix_cache.py from its JSON: cached share with masking on and off, cached
share with two replicas per routing strategy, TTFT/TTFV p50 and tokens/s against concurrency.

Usage: python bench/plot_prefix_cache.py RESULT.json [MORE.json ...] [-o OUT.png]
Several files are merged (a later file's parts win), e.g. a run of the masking and latency parts and a
later run of the affinity part. Needs matplotlib (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"direct": "#4c72b0", "gw_nopii": "#55a868", "gw_pii": "#c44e52"}
LABELS = {"direct": "direct to SGLang", "gw_nopii": "gateway, masking off", "gw_pii": "gateway, masking on"}


def _bars(ax: Any, names: list[str], values: list[float], title: str, colors: list[str]) -> None:
    ax.bar(range(len(names)), values, color=colors)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    for i, v in enumerate(values):
        ax.text(i, v + 0.01, f"{v:.3f}", ha="center", fontsize=8)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """One PNG with a panel per part present in `results`."""
    merged: dict[str, Any] = {}
    for r in results:
        merged.update({k: v for k, v in r.items() if v})
    panels = [k for k in ("masking", "affinity") if k in merged] + (["ttft", "tput"] if "latency" in merged else [])
    if not panels:
        raise SystemExit("nothing to plot: no masking, affinity or latency part in the input")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "masking":
            m = merged["masking"]
            names = [n for n in ("direct", "gw_nopii", "gw_pii") if n in m]
            vals = [m[n]["cached_share_later_turns"] or 0.0 for n in names]
            _bars(
                ax,
                [LABELS[n].replace(", ", "\n") for n in names],
                vals,
                "cached share of prompt tokens, turns 2+",
                [COLORS[n] for n in names],
            )
        elif panel == "affinity":
            aff = merged["affinity"]
            names = [n for n, v in aff.items() if isinstance(v, dict) and "cached_share_later_turns" in v]
            vals = [aff[n]["cached_share_later_turns"] or 0.0 for n in names]
            _bars(
                ax, names, vals, "two replicas: cached share, turns 2+", ["#8172b2", "#937860", "#da8bc3"][: len(names)]
            )
        else:
            levels = merged["latency"]["levels"]
            concs = sorted(levels, key=int)
            for name in COLORS:
                xs = [int(c) for c in concs if name in levels[c]]
                if not xs:
                    continue
                if panel == "ttft":
                    ax.plot(
                        xs,
                        [levels[str(c)][name]["ttft_ms_p50"] for c in xs],
                        "o-",
                        color=COLORS[name],
                        label=f"{LABELS[name]}: TTFT",
                    )
                    ax.plot(
                        xs,
                        [levels[str(c)][name]["ttfv_ms_p50"] for c in xs],
                        "x--",
                        color=COLORS[name],
                        label=f"{LABELS[name]}: first text",
                    )
                else:
                    ax.plot(
                        xs,
                        [levels[str(c)][name]["tokens_per_s"] for c in xs],
                        "o-",
                        color=COLORS[name],
                        label=LABELS[name],
                    )
            ax.set_xscale("log", base=2)
            ax.set_xticks([int(c) for c in concs], concs)
            ax.set_xlabel("concurrent streams")
            ax.set_title(
                "p50 ms to first token / first text" if panel == "ttft" else "tokens/s (completion)", fontsize=9
            )
            ax.legend(fontsize=6)
            ax.grid(alpha=0.3)
    host = merged.get("host") or {}
    fig.suptitle(f"mixguard + SGLang, {host.get('gpu', 'GPU ?')}, {merged.get('started', '')[:10]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path)
    a = p.parse_args()
    out = a.output or a.results[-1].with_suffix(".png")
    plot([json.loads(f.read_text()) for f in a.results], out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
