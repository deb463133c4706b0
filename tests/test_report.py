"""The HTML report: the tiny workflow end to end, `snakemake --report`, then headless Chromium.

Needs Debian's `chromium` for the rendering tests (apt-get install -y chromium); they are
skipped with that reason when it is missing. The rest runs everywhere.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_workdir, snakemake, write_config

pytestmark = pytest.mark.slow

MODELS = ("simclr", "simclrv2")
TABLES = ("reproduction", "accuracy", "gate", "latency", "fps", "estimates")
FIGURES = ("fps", "latency", "accuracy")
OTHER_HOST = "otherhost"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def import_other_host(workdir: Path) -> None:
    """A 310P record as another host would have made it, copied under results/imported/."""
    record = json.loads((workdir / "results/simclr/cpu/fp32/bs1/perf.json").read_text())
    record.update(chip="ascend310p", precision="fp16", throughput_fps=3456.0, cv=0.01)
    record["host"] = dict(record["host"], hostname=OTHER_HOST, cpu="Other CPU")
    target = workdir / f"results/imported/{OTHER_HOST}/simclr/ascend310p/fp16/bs1/perf.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("report"))
    # the CPU as the accuracy gate's reference, so the gate and its threshold are drawn
    gate = write_config(workdir / "gate.yaml",
                        {"gate": {"reference_chip": "cpu", "reference_precision": "fp32"}})
    result = snakemake(workdir, configs=[gate])
    assert result.returncode == 0, result.stderr[-3000:]
    import_other_host(workdir)
    result = snakemake(workdir, configs=[gate])  # an import is new input: tables are rebuilt
    assert result.returncode == 0, result.stderr[-3000:]
    result = snakemake(workdir, "--report", "results/report.html", configs=[gate])
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_report_is_one_self_contained_html_file(reported_run):
    report = reported_run / "results" / "report.html"
    assert report.is_file() and not report.with_suffix(".zip").exists()
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    # every script and style is inline: nothing is fetched when a reviewer opens it
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*\bhref=[\"']https?:", html)


def test_report_embeds_every_table_and_figure(reported_run):
    html = (reported_run / "results" / "report.html").read_text(encoding="utf-8")
    results = reported_run / "results"
    for model in MODELS:
        for table in TABLES:
            for ext in ("md", "csv", "html"):
                path = results / "tables" / f"{model}_{table}.{ext}"
                assert base64.b64encode(path.read_bytes()).decode() in html, path
        for figure in FIGURES:
            png = results / "plots" / f"{model}_{figure}.png"
            assert base64.b64encode(png.read_bytes()).decode() in html, png


def test_report_has_description_captions_provenance_and_graph(reported_run):
    html = (reported_run / "results" / "report.html").read_text(encoding="utf-8")
    assert "chipbench: inference across AI chips" in html  # report/workflow.rst
    assert "Reproduction check" in html and "Figures" in html and "Tables" in html
    assert "Provenance of this figure" in html  # each figure's caption
    assert "config sha256" in html and "dataset md5" in html
    assert "tabulate_reproduction" in html and "measure_throughput" in html  # rule graph


def test_imported_host_is_shown_and_marked(reported_run):
    tables = reported_run / "results" / "tables"
    fps = (tables / "simclr_fps.md").read_text()
    row = next(line for line in fps.splitlines() if line.startswith("| SimCLR bs1 "))
    assert f"3456 [{OTHER_HOST}]" in row  # a chip this host lacks, measured elsewhere
    assert f"cells marked [{OTHER_HOST}]: measured on {OTHER_HOST} (Other CPU" in fps
    reproduction = (tables / "simclr_reproduction.md").read_text()
    assert f"3456 [{OTHER_HOST}]" in reproduction


def test_records_carry_provenance(reported_run):
    record = json.loads((reported_run / "results/simclr/cpu/fp32/bs1/perf.json").read_text())
    provenance = record["provenance"]
    assert len(provenance["config_sha256"]) == 64
    assert provenance["onnx_sha256"] and provenance["dataset_md5"]
    assert provenance["timing"]["protocol"]["min_iterations"] == 3
    assert provenance["system"]["host_processor_core_count"] == record["host"]["cores"]
    assert "numpy" in provenance["runtimes"]


# ------------------------------------------------------------------------------- in Chromium


def colour_counts(path: Path) -> tuple[tuple[int, int], list[int]]:
    """(width, height) and the pixel count of each distinct colour of a PNG."""
    from PIL import Image  # Pillow comes with matplotlib

    with Image.open(path) as image:
        image = image.convert("RGB")
        colours = image.getcolors(maxcolors=image.width * image.height)
        return image.size, [count for count, _ in colours]


def screenshot(html: Path, png: Path, profile: Path) -> Path:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
        "--window-size=1400,1000", "--virtual-time-budget=5000", html.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert png.is_file(), result.stderr[-2000:]
    return png


def assert_not_blank(png: Path) -> None:
    size, counts = colour_counts(png)
    assert size == (1400, 1000)
    assert len(counts) > 50, f"{png}: only {len(counts)} distinct colours"
    assert max(counts) < 0.9 * sum(counts), f"{png}: one colour covers the page"


@pytest.fixture
def browser():
    if chromium() is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium")


def test_report_renders_in_chromium(reported_run, browser, tmp_path):
    report = reported_run / "results" / "report.html"
    png = screenshot(report, tmp_path / "report.png", tmp_path / "profile")
    assert_not_blank(png)


def test_table_view_renders_in_chromium(reported_run, browser, tmp_path):
    """Open the reproduction table's view the way its eye button does, and screenshot it."""
    report = reported_run / "results" / "report.html"
    path = "results/tables/simclr_reproduction.html"
    view = tmp_path / "view.html"
    view.write_text(report.read_text(encoding="utf-8") + (
        "<script>setTimeout(function () {"
        f"var p = {json.dumps(path)}; app.showCategory('Reproduction check');"
        "app.setView({navbarMode: 'resultinfo', content: 'html', "
        "contentPath: results[p].data_uri, resultPath: p}); }, 300);</script>"
    ), encoding="utf-8")
    png = screenshot(view, tmp_path / "table.png", tmp_path / "profile")
    assert_not_blank(png)
