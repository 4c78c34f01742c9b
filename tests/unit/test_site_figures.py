"""Issue 20 item 6: the front page shows the leaderboard's question as two byte-stable SVG figures:
the advantage inside CT against the advantage across the boundary, and the headline CT task's
label-budget curves."""
import base64
import re
import xml.etree.ElementTree as ET

from benchmark.results.store import ResultStore
from leaderboard.site import build_site
from tests.unit.site_helpers import provenance_workdir


def build(root, out):
    workdir = provenance_workdir(root, scales=(1.0, 0.25, 0.05))
    return build_site(ResultStore(workdir.results), out, None, None, workdir.root / "ingested")[0]


def figure(html: str, element_id: str) -> str:
    uri = re.search(rf'id="{element_id}"[^>]* src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)
    return base64.b64decode(uri).decode()


def test_the_front_page_has_both_figures_as_well_formed_svg(tmp_path):
    html = build(tmp_path / "w", tmp_path / "site").read_text()
    scatter, curves = figure(html, "advantage-figure"), figure(html, "budget-figure")
    for svg in (scatter, curves):
        ET.fromstring(svg)  # well-formed
        assert "<dc:date>" not in svg  # no build time
    for name in ("ct-local", "ct-verified", "ct-self (self-reported)"):
        assert name in scatter  # names as text; the unranked row is marked
    assert "imagenet" not in scatter  # the baseline is the origin, not a point
    assert "ct-task" in curves and 'href="tasks/ct-task.v1.html"' in html


def test_the_figures_are_byte_identical_across_rebuilds(tmp_path):
    first = build(tmp_path / "w", tmp_path / "site").read_bytes()
    again = build(tmp_path / "w2", tmp_path / "site2").read_bytes()
    assert first == again


def test_no_figure_without_the_data_for_it(tmp_path):
    workdir = provenance_workdir(tmp_path / "w")  # one label budget: no curves
    html = build_site(ResultStore(workdir.results), tmp_path / "site")[0].read_text()
    assert 'id="budget-figure"' not in html and 'id="advantage-figure"' in html
