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
