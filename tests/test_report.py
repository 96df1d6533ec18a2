"""lrtune report: a self-contained HTML page, checked as text and in a real headless browser."""

from __future__ import annotations

import base64
import html
import re
import shutil
from pathlib import Path

import pytest
from helpers import open_in_chromium

import lrtune
from lrtune.cli import main
from lrtune.workloads import Digits

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    kwargs = {"steps": 15, "batch_size": 32, "eval_every": 5}
    lrtune.train(Digits(), optimizer={"name": "adam", "lr": 1e-2}, out_dir=root / "adam", **kwargs)  # type: ignore[arg-type]
    lrtune.train(Digits(), optimizer={"name": "radam", "lr": 1e-2}, out_dir=root / "radam", diagnostics=True, **kwargs)  # type: ignore[arg-type]
    assert main(["report", str(root / "adam"), str(root / "radam"), "--out", str(root / "report.html")]) == 0
    return root / "report.html"


def test_report_is_self_contained_with_a_row_per_run(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert page.count("<tr>") == 3  # header + two runs
    assert "completed" in page and "radam" in page and "valid_accuracy" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    sources = re.findall(r'<img alt="([^"]*)" src="([^"]*)"', page)
    titles = [html.unescape(t) for t, _ in sources]
    assert "Training loss" in titles and "Gradient histograms (the RAdam paper's Figure 2)" in titles
    assert "RAdam's rectification term r_t" in titles and "Adaptive learning rate l_t" in titles
    for _, src in sources:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data.startswith(PNG) and len(data) > 2_000


def test_bad_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "not a run directory" in " ".join(capsys.readouterr().out.split())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium (make test installs it as root)")
def test_report_opens_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    ok, total, errors = open_in_chromium(report, tmp_path)
    assert total >= 6 and ok == total and errors == 0, (ok, total, errors)
