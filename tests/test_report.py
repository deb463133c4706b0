"""The HTML report: the tiny workflow end to end, `snakemake --report`, then headless Chromium.

Needs Debian's `chromium` and `chromium-driver` and the pinned `selenium` for the rendering
tests (apt-get install -y chromium chromium-driver); they are skipped with that reason when
one is missing. The rest runs everywhere.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import headless_chromium
from tests.conftest import REPO, TEST_CONFIG, copy_run, snakemake, write_config

pytestmark = pytest.mark.slow

MODELS = ("simclr", "simclrv2")
TABLES = ("reproduction", "accuracy", "gate", "latency", "fps", "estimates")
FIGURES = ("fps", "latency", "accuracy")
OTHER_HOST = "otherhost"


def import_other_host(workdir: Path) -> None:
    """A 310P record as another host would have made it, copied under results/imported/."""
    record = json.loads((workdir / "results/simclr/cpu/fp32/bs1/perf.json").read_text())
    # three trials within 1 % of each other: a quiet cell, shown without the noise mark
    record.update(chip="ascend310p", precision="fp16", throughput_fps=3456.0, cv=0.01,
                  trials={"count": 3, "fps": [3440.0, 3456.0, 3472.0], "spread": 32 / 3456,
                          "ci95": [3416.3, 3495.7]})
    record["host"] = dict(record["host"], hostname=OTHER_HOST, cpu="Other CPU")
    target = workdir / f"results/imported/{OTHER_HOST}/simclr/ascend310p/fp16/bs1/perf.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def reported_run(finished_run, tmp_path_factory):
    workdir = copy_run(finished_run, tmp_path_factory.mktemp("report") / "run")
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
            for ext in ("md", "csv", "provenance.json", "html"):
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
    assert f"[{OTHER_HOST}] measured on {OTHER_HOST}" in fps
    assert f"{OTHER_HOST} (Other CPU" in fps  # its host, beside this one
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


def blank_reason(png: Path) -> str | None:
    """Why the screenshot looks blank, or None when it shows a page."""
    size, counts = colour_counts(png)
    if size != (1400, 1000):
        return f"{png}: {size}, not the 1400x1000 window"
    if len(counts) <= 50:
        return f"{png}: only {len(counts)} distinct colours"
    if max(counts) >= 0.9 * sum(counts):
        return f"{png}: one colour covers the page"
    return None


def assert_not_blank(png: Path) -> None:
    reason = blank_reason(png)
    assert reason is None, reason


#: The report's React app has rendered and Tailwind has styled it: the navigation bar exists
#: and has its background (it is transparent until the styles are generated).
APP_STYLED = ("(nav => nav !== null && getComputedStyle(nav).backgroundColor !== 'rgba(0, 0, 0, 0)')"
              "(document.querySelector('#app nav'))")


@pytest.fixture
def browser(tmp_path):
    if headless_chromium.executable() is None or headless_chromium.driver_executable() is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium chromium-driver")
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -r envs/requirements.txt")
    browser = headless_chromium.Browser(tmp_path / "profile", width=1400, height=1000)
    yield browser
    browser.close()


def test_report_renders_in_chromium(reported_run, browser, tmp_path):
    browser.open((reported_run / "results" / "report.html").as_uri(), ready=APP_STYLED)
    text = browser.evaluate("document.querySelector('#app').innerText")
    for shown in ("chipbench: inference across AI chips", "Reproduction check", "Tables", "Figures"):
        assert shown in text
    assert_not_blank(browser.screenshot(tmp_path / "report.png"))


def test_table_view_renders_in_chromium(reported_run, browser, tmp_path):
    """Open the reproduction table's view the way its eye button does, and screenshot it."""
    browser.open((reported_run / "results" / "report.html").as_uri(), ready=APP_STYLED)
    path = "results/tables/simclr_reproduction.html"
    browser.evaluate(
        f"var p = {json.dumps(path)}; app.showCategory('Reproduction check');"
        "app.setView({navbarMode: 'resultinfo', content: 'html', "
        "contentPath: results[p].data_uri, resultPath: p}); true"
    )
    frame = headless_chromium.wait_for(
        lambda: browser.evaluate("document.querySelector('#app iframe')?.src.slice(0, 60)"),
        what="the table view's iframe")
    assert frame.startswith("data:text/html") and "simclr_reproduction" in frame
    png = tmp_path / "table.png"
    # the view is an iframe of the table's own HTML: shot once that has been painted
    headless_chromium.wait_for(lambda: blank_reason(browser.screenshot(png)) is None,
                               what=f"the table view painted ({png})")


# ------------------------------------------------------------------- declared inputs


def run_copy(workflow: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    configs = [str(TEST_CONFIG), str(workdir / "dataset.yaml"), str(workdir / "select.yaml")]
    command = [sys.executable, "-m", "snakemake", "-s", str(workflow / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", *args, "--configfile", *configs]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def test_editing_published_figures_rebuilds_the_tables(finished_run, tmp_path):
    """resources/published.yaml is an input of the table and figure rules: a changed published
    figure reruns them (and only them) and shows up in the table."""
    workflow = tmp_path / "workflow"
    shutil.copytree(REPO, workflow, ignore=shutil.ignore_patterns(
        ".*", "results", "logs", "tests", "docs", "benchmarks", "__pycache__"))
    workdir = copy_run(finished_run, tmp_path / "run")
    write_config(workdir / "select.yaml",
                 {"select": {"models": ["simclr"], "chips": ["cpu"], "batch_sizes": [1]}})
    targets = ["results/tables/simclr_fps.md", "results/tables/simclr_reproduction.md",
               "results/plots/simclr_fps.png"]
    result = run_copy(workflow, workdir, *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    fps = workdir / "results/tables/simclr_fps.md"
    assert " bs64 12075 |" in fps.read_text()  # the report's best T4 row
    result = run_copy(workflow, workdir, "-n", *targets)
    assert "Nothing to be done" in result.stdout + result.stderr

    published = workflow / "resources" / "published.yaml"
    published.write_text(published.read_text().replace("{chip: t4, batch_size: 64, fps: 12075}",
                                                        "{chip: t4, batch_size: 64, fps: 12076}"))
    result = run_copy(workflow, workdir, "-n", *targets, "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    stats = output.split("Job stats:")[1].split("total")[0]
    rerun = {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}
    assert rerun == {"tabulate_fps", "tabulate_reproduction", "plot_fps"}, stats
    assert "updated input files:\n        plot_fps, tabulate_fps, tabulate_reproduction" in output
    result = run_copy(workflow, workdir, *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    assert " bs64 12076 |" in fps.read_text() and " bs64 12075 |" not in fps.read_text()
