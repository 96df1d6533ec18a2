"""``lrtune report``: one self-contained HTML page about one or more runs (PNG plots embedded as data URIs).

A run directory is what :func:`lrtune.train` writes with an ``out_dir``: ``config.json``, ``metrics.jsonl``,
``run.json`` and, with ``diagnostics=True``, ``diagnostics.jsonl``. The page holds a summary table (config, final
metrics, status, skipped steps) and, overlaid across runs where it makes sense: training loss, LR, gradient norm,
evaluation metrics, the Figure-2 gradient histograms side by side, the adaptive rate, r_t and update ratios.
No external asset, no script.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._json import read_jsonl
from ._plot import _labels, _pyplot, plot_adaptive_lr, plot_gradient_histograms

__all__ = ["load_run", "write_report"]

logger = logging.getLogger(__name__)


def load_run(run_dir: str | os.PathLike[str], *, diagnostics: bool = True) -> dict[str, Any]:
    """A run directory's files as data: ``config``, ``run`` (outcome, if written), ``steps``, ``evals`` and
    ``diagnostics`` (empty when not recorded, or not read with ``diagnostics=False``)."""
    root = Path(run_dir)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"{root} is not a run directory (no config.json): pass lrtune.train's out_dir")
    notes: list[str] = []

    def records(path: Path) -> list[dict[str, Any]]:
        found, note = read_jsonl(path, torn="skip")
        if note:
            logger.warning("%s", note)
            notes.append(note)
        return found

    lines = records(root / "metrics.jsonl") if (root / "metrics.jsonl").is_file() else []
    diag = root / "diagnostics.jsonl"
    return {
        "name": root.name,
        "config": _read_json(root / "config.json"),
        "run": _read_json(root / "run.json") if (root / "run.json").is_file() else {},
        "steps": [x for x in lines if "loss" in x],
        "evals": [x for x in lines if "eval" in x],
        "diagnostics": records(diag) if diagnostics and diag.is_file() else [],
        "notes": notes,
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _lines(
    runs: list[dict[str, Any]],
    names: list[str],
    series: Callable[[dict[str, Any]], tuple[list[Any], list[Any]]],
    ylabel: str,
    *,
    log: bool = False,
) -> Any | None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    drawn = False
    for run, name in zip(runs, names, strict=True):
        x, y = series(run)
        pairs = [(a, b) for a, b in zip(x, y, strict=True) if b is not None]
        if pairs:
            ax.plot([a for a, _ in pairs], [b for _, b in pairs], label=name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("optimizer update")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


def _eval_series(key: str) -> Callable[[dict[str, Any]], tuple[list[Any], list[Any]]]:
    def series(run: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        return [e["step"] for e in run["evals"]], [e["eval"].get(key) for e in run["evals"]]

    return series


def _summary_rows(runs: list[dict[str, Any]], names: list[str]) -> str:
    rows = []
    for run, name in zip(runs, names, strict=True):
        config, outcome = run["config"], run["run"]
        final = outcome.get("final_metrics") or (run["evals"][-1]["eval"] if run["evals"] else {})
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in final.items())
        cells = [
            name,
            config.get("workload", ""),
            json.dumps(config.get("optimizer")),
            json.dumps(config.get("schedule")),
            str(outcome.get("steps", len(run["steps"]))),
            outcome.get("status", "unknown"),
            str(outcome.get("skipped_steps", run["steps"][-1]["skipped_steps"] if run["steps"] else 0)),
            metrics,
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "\n".join(rows)


def write_report(
    run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, labels: Sequence[str] | None = None
) -> Path:
    """Write the HTML report of ``run_dirs`` to ``out`` (written atomically); returns its path."""
    if not run_dirs:
        raise ValueError("write_report needs at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    names = _labels(labels, len(runs)) if labels is not None else [r["name"] for r in runs]
    figures: list[tuple[str, Any]] = []

    def add(title: str, fig: Any) -> None:
        if fig is not None:
            figures.append((title, fig))

    add(
        "Training loss",
        _lines(runs, names, lambda r: ([x["step"] for x in r["steps"]], [x["loss"] for x in r["steps"]]), "loss"),
    )
    add(
        "Learning rate",
        _lines(runs, names, lambda r: ([x["step"] for x in r["steps"]], [x["lr"] for x in r["steps"]]), "LR"),
    )
    add(
        "Gradient norm (before clipping)",
        _lines(
            runs,
            names,
            lambda r: ([x["step"] for x in r["steps"]], [x["grad_norm"] for x in r["steps"]]),
            "‖g‖",
            log=True,
        ),
    )
    metric_keys = sorted({k for r in runs for e in r["evals"] for k in e["eval"]})
    for key in metric_keys:
        add(f"Evaluation: {key}", _lines(runs, names, _eval_series(key), key))
    with_diag = [(r, n) for r, n in zip(runs, names, strict=True) if r["diagnostics"]]
    if with_diag:
        diag_runs, diag_names = [r["diagnostics"] for r, _ in with_diag], [n for _, n in with_diag]
        add("Gradient histograms (the RAdam paper's Figure 2)", plot_gradient_histograms(diag_runs, labels=diag_names))
        if any("adaptive_lr" in x for d in diag_runs for x in d):
            add("Adaptive learning rate l_t", plot_adaptive_lr(diag_runs, labels=diag_names))
        add(
            "RAdam's rectification term r_t",
            _lines(
                [r for r, _ in with_diag],
                diag_names,
                lambda r: (
                    [x["step"] for x in r["diagnostics"]],
                    [x.get("rectification", {}).get("r") for x in r["diagnostics"]],
                ),
                "r_t",
            ),
        )
        add(
            "Update-to-weight ratio ‖Δθ‖/‖θ‖ (first group)",
            _lines(
                [r for r, _ in with_diag],
                diag_names,
                lambda r: ([x["step"] for x in r["diagnostics"]], [x["update_ratio"][0] for x in r["diagnostics"]]),
                "ratio",
                log=True,
            ),
        )
    sections = "\n".join(
        f'<h2>{html.escape(title)}</h2>\n<img alt="{html.escape(title)}" src="data:image/png;base64,{_png(fig)}">'
        for title, fig in figures
    )
    notes = "\n".join(f'<p class="note">Note: {html.escape(n)}</p>' for r in runs for n in r["notes"])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lrtune report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:90%;vertical-align:top}}img{{max-width:100%}}</style>
</head><body>
<h1>lrtune report: {len(runs)} run{"s" if len(runs) > 1 else ""}</h1>
<table><tr><th>run</th><th>workload</th><th>optimizer</th><th>schedule</th><th>updates</th><th>status</th>
<th>skipped steps</th><th>final metrics</th></tr>
{_summary_rows(runs, names)}
</table>
{notes}
{sections}
</body></html>
"""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
