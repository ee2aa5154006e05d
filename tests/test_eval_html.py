"""`ganbatch eval --report`: the HTML report with its plots, checked in headless Chromium."""
import json

from click.testing import CliRunner

from browser import count, load, needs_chromium
from ganbatch.cli import main
from ganbatch.eval.html import CURVE_IDENTITIES, STRIP_IDENTITIES


@needs_chromium
def test_eval_report_page_has_its_plots_and_no_console_errors(tmp_path):
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["eval", "--model", "demo", "--identities", "1", "--random-pairs", "0",
                                       "--path-frames", "4", "--out", str(tmp_path / "report.json"),
                                       "--report", str(page)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    dom, console = load(f"file://{page}")
    assert console == []
    assert count(dom, "bar") == 2 * len(report["per_au"]) + 2 * len(report["per_expression"])
    assert count(dom, "curve") == 2 * CURVE_IDENTITIES
    assert count(dom, "strip") == STRIP_IDENTITIES and dom.count('src="data:image/png;base64,') == STRIP_IDENTITIES
    assert f"{report['psnr']:.2f}" in dom and "AU error per action unit" in dom


def test_the_report_pictures_come_from_the_runtime_that_made_its_numbers(tmp_path):
    """The eval job opens its model once, on its runtime: the page's strips and curves are rendered by that engine
    (the page once reopened the model on torch, whatever the job's runtime)."""
    from ganbatch.eval import evaluate_model
    from ganbatch.eval.html import write_html_report
    from ganbatch.runtimes import open_runtime

    engine = open_runtime("demo", runtime="torch")
    report = evaluate_model(engine, 1, model_name="demo", random_pairs=0, path_frames=4)
    calls = []
    run = engine._run
    engine._run = lambda *args, **kwargs: calls.append(1) or run(*args, **kwargs)
    write_html_report(report, str(tmp_path / "report.html"), runtime=engine)
    assert len(calls) >= STRIP_IDENTITIES + CURVE_IDENTITIES
    page = (tmp_path / "report.html").read_text()
    assert page.count('class="strip"') == STRIP_IDENTITIES and report["settings"]["runtime"] == engine.describe()


def test_smoothness_curves_can_be_told_apart(tmp_path):
    """Every target was drawn in the same two colours (model, ground truth): now a colour per target, the ground
    truth dashed."""
    import re

    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["eval", "--model", "demo", "--identities", "1", "--random-pairs", "0",
                                       "--path-frames", "4", "--out", str(tmp_path / "report.json"),
                                       "--report", str(page)])
    assert result.exit_code == 0, result.output
    styles = re.findall(r'<polyline class="curve" points="[^"]*" fill="none" stroke="([^"]+)" stroke-width="2"'
                        r'( stroke-dasharray="6 3")?>', page.read_text())
    assert len(styles) == 2 * CURVE_IDENTITIES and len(set(styles)) == len(styles), styles
