"""The study's report: one self-contained HTML page (PNG figures as data URIs, no script) and the figures as files.

Figures: final validation loss and BLEU against the peak LR per recipe (mean over seeds, bars from the best to
the worst seed; diverged settings marked at the top), the learning curves of each recipe's best run, the
gradient histograms of the first updates with and without warm-up (the RAdam paper's Figure 2), and RAdam's
rectification term r_t for β2 = 0.98 and 0.999 next to the untuned warm-up and the study's linear warm-up.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from .._rectification import rectification
from ..diagnostics import load_records, load_run, plot_gradient_histograms
from ..diagnostics._plot import _pyplot

__all__ = ["plot_lr_sensitivity", "plot_rectification", "write_study_report"]

LABELS = {
    "sgd_clip": "SGD + momentum + clip",
    "adam": "Adam, no warm-up",
    "adam_warmup": "Adam + warm-up",
    "radam": "RAdam, no warm-up",
    "radam_warmup": "RAdam + warm-up",
    "algoperf": "AdamW + warm-up + cosine (AlgoPerf)",
}

SHORT = {"adam": "Adam", "adam_warmup": "Adam + warm-up", "radam": "RAdam"}


def _label(recipe: str) -> str:
    return LABELS.get(recipe, recipe)


def plot_lr_sensitivity(summary: dict[str, Any], metric: str = "valid_loss") -> Any:
    """Final ``valid_loss`` (or ``bleu``) against the peak LR, one line per recipe (and β2 / warm-up when the
    study varied them): the seeds' mean with bars to the best and worst seed; diverged settings as ✕ at the top."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    series: dict[str, list[dict[str, Any]]] = {}

    def varies(recipe: str, key: str) -> bool:  # does the study vary this axis for this recipe?
        return len({s[key] for s in summary["settings"] if s["recipe"] == recipe}) > 1

    for s in summary["settings"]:
        name = _label(s["recipe"])
        if varies(s["recipe"], "beta2"):
            name += f", β2={s['beta2']}"
        if varies(s["recipe"], "warmup_steps"):
            name += f", warm-up {s['warmup_steps']}"
        if varies(s["recipe"], "steps"):
            name += f", {s['steps']} updates"
        series.setdefault(name, []).append(s)
    finite = [s for s in summary["settings"] if math.isfinite(s["mean_valid_loss"])]
    top = None
    if metric == "valid_loss" and finite:
        top = max(s["max_valid_loss"] for s in finite) * 1.03
    for name, points in series.items():
        points.sort(key=lambda s: s["lr"])
        if metric == "valid_loss":
            ok = [p for p in points if math.isfinite(p["mean_valid_loss"])]
            mean = [p["mean_valid_loss"] for p in ok]
            low = [p["mean_valid_loss"] - p["min_valid_loss"] for p in ok]
            high = [p["max_valid_loss"] - p["mean_valid_loss"] for p in ok]
            line = ax.errorbar([p["lr"] for p in ok], mean, yerr=[low, high], marker="o", capsize=3, label=name)
            bad = [p for p in points if not math.isfinite(p["mean_valid_loss"])]
            if bad and top is not None:
                ax.plot([p["lr"] for p in bad], [top] * len(bad), "x", color=line[0].get_color(), markersize=9)
        else:
            ok = [p for p in points if p["mean_bleu"] is not None]
            ax.plot([p["lr"] for p in ok], [p["mean_bleu"] for p in ok], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss (mean over seeds)" if metric == "valid_loss" else "BLEU (mean over seeds)")
    if metric == "valid_loss" and "target_valid_loss" in summary:
        ax.axhline(summary["target_valid_loss"], color="grey", linestyle=":", linewidth=1, label="target")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_learning_curves(summary: dict[str, Any], out_dir: Path) -> Any | None:
    """Training loss (moving average over 10 updates) and validation loss of each recipe's best run."""
    plt = _pyplot()
    best_runs = []
    for recipe, info in summary.get("recipes", {}).items():
        candidates = [r for r in summary["runs"] if r["recipe"] == recipe and r["lr"] == info["best_lr"]]
        if candidates:
            best_runs.append(min(candidates, key=lambda r: r["valid_loss"]))
    if not best_runs:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for run in best_runs:
        if not (out_dir / run["run_dir"] / "config.json").is_file():
            continue
        losses = [(x["step"], x["loss"]) for x in load_run(out_dir / run["run_dir"], diagnostics=False)["steps"]]
        smooth, acc = [], []
        for step, loss in losses:
            acc.append(loss)
            smooth.append((step, sum(acc[-10:]) / len(acc[-10:])))
        label = f"{_label(run['recipe'])}, lr {run['lr']:.2g}"
        left.plot([s for s, _ in smooth], [v for _, v in smooth], label=label)
        right.plot([e["step"] for e in run["evals"]], [e["valid_loss"] for e in run["evals"]], marker="o", label=label)
    left.set_title("training loss (10-update mean)")
    right.set_title("validation loss")
    for ax in (left, right):
        ax.set_xlabel("optimizer update")
        ax.grid(alpha=0.3)
    if "target_valid_loss" in summary:
        right.axhline(summary["target_valid_loss"], color="grey", linestyle=":", linewidth=1, label="target")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_rectification(
    betas: tuple[float, ...] = (0.98, 0.999), steps: int = 1000, warmup: int | None = None, run: int | None = None
) -> Any:
    """RAdam's r_t for each β2 next to the untuned warm-up 1 − exp(−(1 − β2)t) and a linear warm-up: RAdam's
    implicit warm-up is short for β2 = 0.98 and long for 0.999, so "no warm-up needed" depends on β2."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    t = list(range(1, steps + 1))
    for beta2 in betas:
        line = ax.plot(t, [rectification(beta2, s) for s in t], label=f"RAdam r_t, β2={beta2}")[0]
        ax.plot(
            t,
            [1 - math.exp(-(1 - beta2) * s) for s in t],
            linestyle="--",
            color=line.get_color(),
            label=f"untuned warm-up 1−exp(−(1−β2)t), β2={beta2}",
        )
    if warmup:
        ax.plot(t, [min(1.0, s / warmup) for s in t], color="black", linewidth=1, label=f"linear warm-up, {warmup}")
    if run:
        ax.axvline(run, color="grey", linestyle=":", linewidth=1, label=f"the study's runs end ({run} updates)")
    ax.set_xscale("log")
    ax.set_xlabel("update t")
    ax.set_ylabel("LR multiplier")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "∞ (diverged)"
    return format(value, spec)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _recipe_rows(summary: dict[str, Any]) -> str:
    rows = []
    for recipe in summary.get("ranking", []):
        info = summary["recipes"][recipe]
        low, high = info["best_spread"]
        width = info["lr_width_decades"]
        cells = [
            _label(recipe),
            _fmt(info["best_lr"], ".3g"),
            f"{_fmt(info['best_mean_valid_loss'])} ({_fmt(low)}–{_fmt(high)})",
            _fmt(info["best_mean_bleu"], ".2f"),
            "none" if width is None else f"{_count(len(info['lrs_near_best']), 'LR')}, {width:.1f} decades",
            f"{info['runs_reaching_target']}/{info['runs']}",
            _fmt(info["median_steps_to_target"], ".0f"),
            f"{info['diverged_runs']}/{info['runs']}",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "\n".join(rows)


def _diagnostic_runs(summary: dict[str, Any], out_dir: Path) -> list[tuple[str, Any]]:
    found: dict[str, Any] = {}
    for run in summary["runs"]:
        path = out_dir / run["run_dir"] / "diagnostics.jsonl"
        if path.is_file() and run["recipe"] not in found:
            found[run["recipe"]] = (
                f"{SHORT.get(run['recipe'], run['recipe'])}, lr {run['lr']:.2g}",
                load_records(path),
            )
    order = ["adam", "adam_warmup", "radam"]
    return [found[r] for r in order if r in found]


def _cell_label(cell: dict[str, Any], settings: list[dict[str, Any]]) -> str:
    """A cell (the study's parameters without seed and horizon) as recipe and peak LR."""
    key = json.dumps(cell, sort_keys=True)
    found = next((s for s in settings if s["cell"] == key), None)
    return f"{_label(found['recipe'])}, LR {found['lr']:.3g}" if found else json.dumps(cell)


def branch_screening(summary: dict[str, Any], steps: int) -> dict[str, Any] | None:
    """The study's ``screening`` record when its runs of ``steps`` updates are branches, else None."""
    screening = summary.get("screening") or {}
    return screening if screening.get("kind") == "branch" and steps == screening["steps"] else None


def after(summary: dict[str, Any], steps: int) -> str:
    """How the study's runs of ``steps`` updates were compared: "after N updates", or, for a screening by
    branches, where the branches left their runs."""
    screening = branch_screening(summary, steps)
    if screening is not None:
        return (
            f"at its branch (its {screening['of_steps']}-update schedule to update {screening['at']}, then "
            f"{screening['cooldown']} updates of cooldown)"
        )
    return f"after {steps} updates"


def edge_note(summary: dict[str, Any]) -> str | None:
    """A sentence when the recommended LR is at an edge of its recipe's grid (None otherwise): the study tried
    nothing beyond it, so a better LR may lie there."""
    rec = summary.get("recommendation") or {}
    edge = rec.get("lr_at_edge")
    if edge not in ("largest", "smallest"):
        return None
    tried = (summary.get("recipes") or {}).get(rec["recipe"], {}).get("lrs_tried") or []
    among = f" ({', '.join(f'{lr:.3g}' for lr in tried)})" if tried else ""
    beyond = "larger" if edge == "largest" else "smaller"
    steps = [b for b in summary.get("beyond") or [] if b["recipe"] == rec["recipe"]]
    if steps:  # the study looked beyond its grid, and ran out of steps with the best still at the edge
        return (
            f"The recommended peak LR, {rec['lr']:.3g}, is the {edge} of those its recipe tried{among}, after "
            f"{len(steps)} step{'s' * (len(steps) > 1)} beyond its grid (the study's limit, Preset(beyond=...)): a "
            f"{beyond} one may be better still. Widen the grid (Preset(lr_factors=...)) before relying on this LR."
        )
    return (
        f"The recommended peak LR, {rec['lr']:.3g}, is the {edge} of those its recipe's grid tried{among}: a "
        f"{beyond} one may be better, and the study did not try one. Widen the grid (--preset standard: 5 LRs over "
        "two decades; or Preset(lr_factors=...)), or let the study look beyond it (--beyond), before relying on "
        "this LR."
    )


def beyond_note(summary: dict[str, Any]) -> str | None:
    """A sentence on the runs the study added beyond an edge of its grid (None when there were none)."""
    steps = summary.get("beyond") or []
    if not steps:
        return None
    each = "; ".join(
        f"{LABELS.get(b['recipe'], b['recipe'])} at {b['lr']:.3g} ({b['of']:.3g} was the {b['edge']} tried)"
        for b in steps
    )
    edge = "the recommended setting was at an edge of the LRs its recipe tried"
    return f"Beyond the grid: {edge}, so the study also trained {each}."


def horizon_note(summary: dict[str, Any]) -> str:
    """One sentence on the horizon the recommendation is for and whether the study's ranking held across its
    horizons."""
    rec, transfer = summary.get("recommendation") or {}, summary.get("transfer")
    steps = rec.get("for_steps", summary.get("horizon"))
    if not transfer:
        return (
            f"This is the best setting for runs of {steps} updates, the only horizon the study ran; for much longer "
            "training another setting may be best (short-horizon bias): run the study at the length you will train."
        )
    if not transfer["pairs"]:  # one finalist: no two settings were run at two horizons
        return (
            f"For runs of {steps} updates, measured at {steps} on the one setting trained that long: the study's "
            "horizons share too few settings to compare their rankings, and a setting the screening ranked lower "
            f"may be better at {steps}: train more finalists (--finalists) when that matters."
        )
    worst = max(transfer["pairs"], key=lambda p: p["regret"] if math.isfinite(p["regret"]) else math.inf)
    screened = {
        p["short"]: sum(s["steps"] == p["short"] for s in summary.get("settings", [])) for p in transfer["pairs"]
    }
    cells = min(p["cells"] for p in transfer["pairs"])
    among = f" (compared over the {cells} settings run at both)" if cells < max(screened.values()) else ""
    if transfer["stable"]:
        return (
            f"For runs of {steps} updates. The ranking held across the study's horizons "
            f"({', '.join(map(str, transfer['horizons']))} updates): the pick at every shorter horizon is within 2 % "
            f"of the best at {steps}{among}."
        )
    if among:  # finalists trained to the target: the answer was measured there
        return (
            f"For runs of {steps} updates, measured at {steps}: the setting best {after(summary, worst['short'])} is "
            f"{100 * worst['regret']:.1f} % worse than the best after {worst['long']}{among} (rank correlation "
            f"{worst['spearman']:.2f}) — short-horizon bias. The answer is the best of the {cells} finalists trained "
            f"to {steps}; a setting the screening ranked below them was not trained that long and may be better "
            "there: train more finalists (--finalists) when that matters, and for much longer training set the "
            "target at that length."
        )
    return (
        f"For runs of {steps} updates only: the ranking is not stable across the study's horizons — the setting "
        f"best {after(summary, worst['short'])} is {100 * worst['regret']:.1f} % worse than the best after "
        f"{worst['long']}{among} (rank correlation {worst['spearman']:.2f}). Train for the horizon the study chose "
        "at, or run it at the length you will train."
    )


def _transfer_table(summary: dict[str, Any]) -> str:
    transfer = summary.get("transfer")
    if not transfer:
        return ""
    settings = summary["settings"]
    rows = "\n".join(
        f"<tr><td>{p['short']} → {p['long']}</td><td>{p['cells']}</td><td>{_fmt(p['spearman'], '.2f')}</td>"
        f"<td>{'yes' if p['top1'] else 'no'}</td><td>{_fmt(100 * p['regret'], '+.1f')} %</td>"
        f"<td>{html.escape(_cell_label(p['pick'], settings))}</td><td>{html.escape(_cell_label(p['best'], settings))}"
        "</td></tr>"
        for p in transfer["pairs"]
    )
    return f"""<h2>Does the ranking hold for longer training?</h2>
<p>Between the study's horizons, over the settings run at both: rank correlation of the final validation losses,
whether the best at the shorter horizon is the best at the longer (top-1), and its regret (its loss at the longer
horizon over the best there, minus 1).{_branch_sentence(summary)}</p>
<table><tr><th>horizons (updates)</th><th>settings</th><th>Spearman ρ</th><th>top-1</th><th>regret</th>
<th>pick at the shorter</th><th>best at the longer</th></tr>
{rows}
</table>"""


def _branch_sentence(summary: dict[str, Any]) -> str:
    screening = summary.get("screening") or {}
    if screening.get("kind") != "branch":
        return ""
    return (
        f" The screening's {screening['steps']} updates are branches: each setting trained on its "
        f"{screening['of_steps']}-update schedule to update {screening['at']}, then its LR decayed linearly to 0 over "
        f"{screening['cooldown']} updates; the finalists continued their runs from update {screening['at']}."
    )


def write_study_report(summary: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``OUT/report.html`` and the figures ``OUT/figures/*.png``; returns the report's path."""
    out = Path(out_dir)
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    sections: list[tuple[str, str, str]] = []  # (title, file, caption)

    def add(title: str, name: str, fig: Any, caption: str) -> None:
        if fig is None:
            return
        path = figures_dir / name
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        sections.append((title, name, caption))

    add(
        "Final validation loss vs peak LR",
        "valid_loss_vs_lr.png",
        plot_lr_sensitivity(summary),
        "Robustness at a glance: a recipe whose curve stays low over a wide LR range needs less tuning.",
    )
    if any(s["mean_bleu"] is not None for s in summary["settings"]):
        add("BLEU vs peak LR", "bleu_vs_lr.png", plot_lr_sensitivity(summary, "bleu"), "Test BLEU at the end.")
    add(
        "Learning curves of each recipe's best run",
        "learning_curves.png",
        plot_learning_curves(summary, out),
        "The dotted line is the target validation loss of the steps-to-target measure.",
    )
    diag = _diagnostic_runs(summary, out)
    if len(diag) >= 2:
        add(
            "Gradient histograms over the first updates (Figure 2 of Liu et al. 2020)",
            "gradient_histograms.png",
            plot_gradient_histograms([d for _, d in diag], labels=[n for n, _ in diag]),
            "Share of gradient elements per |g| bin (x, log10) for each of the first updates (y), at the centre LR.",
        )
    settings = summary.get("settings", [])
    betas = tuple(sorted({s["beta2"] for s in settings if s["beta2"] is not None and s["recipe"].startswith("radam")}))
    warmups = [s["warmup_steps"] for s in settings if s["recipe"] == "adam_warmup" and s["warmup_steps"]]
    add(
        "RAdam's implicit warm-up: r_t vs warm-up schedules",
        "rectification.png",
        plot_rectification(
            tuple(sorted(set(betas) | {0.98, 0.999})),
            warmup=max(warmups) if warmups else None,
            run=max(s["steps"] for s in settings) if settings else None,
        ),
        f"With β2 = 0.98 r_t is {rectification(0.98, 50):.2f} at update 50 and {rectification(0.98, 200):.2f} at "
        f"200; with β2 = 0.999 it is {rectification(0.999, 50):.2f} at 50 and {rectification(0.999, 1000):.2f} at "
        "1000: whether RAdam 'needs no warm-up' depends on β2.",
    )
    rec = summary.get("recommendation")
    if rec:
        evidence = (
            f"mean final validation loss {_fmt(rec['mean_valid_loss'])} over seeds (best–worst "
            f"{_fmt(rec['spread'][0])}–{_fmt(rec['spread'][1])})"
            + (f", BLEU {rec['mean_bleu']:.2f}" if rec["mean_bleu"] is not None else "")
            + (f"; runner-up: {_label(rec['runner_up'])}" if rec["runner_up"] else "")
        )
        recommendation = (
            f"<p class='rec'><b>Use {html.escape(_label(rec['recipe']))}</b> with peak LR <b>{rec['lr']:.3g}</b>, "
            f"warm-up <b>{rec['warmup_steps']}</b> updates, schedule <code>{html.escape(json.dumps(rec['schedule']))}"
            f"</code>, optimizer <code>{html.escape(json.dumps(rec['optimizer']))}</code>"
            + (f", gradient clipping at {rec['max_grad_norm']}" if rec["max_grad_norm"] else "")
            + f".<br>Evidence: {html.escape(evidence)}. The run config is <code>recommended.json</code> "
            "(<code>lrtune train --config recommended.json</code>)."
            + (
                ""
                if rec.get("clear", True)
                else f"<br><b>Not a clear win:</b> the runner-up's best mean lies within this recipe's seed spread "
                f"({_fmt(rec['spread'][0])}–{_fmt(rec['spread'][1])}); more seeds or longer runs "
                "(<code>--preset standard</code>) would be needed to separate them."
            )
            + "</p>"
        )
        recommendation = recommendation.replace("</p>", f"<br>{html.escape(horizon_note(summary))}</p>", 1)
        extra = beyond_note(summary)
        if extra:
            recommendation = recommendation.replace("</p>", f"<br>{html.escape(extra)}</p>", 1)
        edge = edge_note(summary)
        if edge:
            recommendation = recommendation.replace(
                "</p>", f"<br><b>At the edge of the grid:</b> {html.escape(edge)}</p>", 1
            )
    else:
        recommendation = "<p class='rec'>No recommendation: no setting finished with a finite validation loss.</p>"
    transfer_html = _transfer_table(summary)
    compute = summary["compute"]
    figures_html = "\n".join(
        f"<h2>{html.escape(title)}</h2>\n<p>{html.escape(caption)}</p>\n"
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,'
        f'{base64.b64encode((figures_dir / name).read_bytes()).decode("ascii")}">'
        for title, name, caption in sections
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lrtune study: {html.escape(str(summary.get("workload")))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:90%}}img{{max-width:100%}}
.rec{{background:#eef6ee;border:1px solid #8b8;padding:0.8em}}</style>
</head><body>
<h1>lrtune study: {html.escape(str(summary.get("workload")))}, preset {html.escape(str(summary.get("preset")))}</h1>
<h2>Recommendation</h2>
{recommendation}
{transfer_html}
<h2>Recipes, best first</h2>
<p>Target validation loss {_fmt(summary.get("target_valid_loss"))} (1.02 × the best mean). "LRs within 2 %": grid LRs
whose mean final validation loss is within 2 % of the best setting's (at or below the target).</p>
<table><tr><th>recipe</th><th>best peak LR</th><th>mean valid loss (best–worst seed)</th><th>BLEU</th>
<th>LRs within 2 % of the best</th><th>runs reaching the target</th><th>median updates to target</th>
<th>diverged runs</th></tr>
{_recipe_rows(summary)}
</table>
<p>Compute: {len(summary["runs"])} runs, {compute["updates"]} optimizer updates, {compute["seconds"]:.0f} s of
training summed over the runs (parallel workers' runs overlap in time); {summary["diverged_runs"]} diverged.</p>
{figures_html}
</body></html>
"""
    path = out / "report.html"
    tmp = out / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
