"""Site faults: hostile strings in every user-given field are escaped on every page (and stay intact,
unicode included), and a malformed result file is one named warning while everything else still builds.

``ctbench leaderboard build`` with malformed results exits 0: the warning names each bad file on
stderr (one line each) and on the index page, and the rest of the leaderboard is built as usual.
"""
import base64
import csv
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmark.cli import main as cli
from benchmark.core.atomic import write_json
from benchmark.core.workdir import Workdir
from benchmark.results.job import Job
from benchmark.results.store import ResultStore
from leaderboard.importer import import_csv, imported_dir
from leaderboard.site import build_site
from tests.cli_helpers import run_cli

XSS = "<script>alert(1)</script>"
HOSTILE = {  # field -> a string that must reach the page as text, never as markup
    "checkpoint": XSS + "\"'ck",
    "task": "</td></tr></table><script>alert(2)</script>",
    "protocol": "lin\"'><img src=x onerror=alert(3)>",
    "metric": "</script><script>alert(4)</script> $\\notacommand$",  # '$' starts matplotlib's mathtext
    "domain": "ct\" onmouseover=\"alert(5)",
    "method": "javascript:alert(6)",
    "data": "\u202eRTL override\u202c \u200fمرحبا\u200f",
    "arch": "emoji 🧠🩻 combining e\u0301 a\u0308 Ω",
    "description": "{{ 7 * 7 }} {% raw %} $\\foo$ & &amp; <!-- -->",
    "sha256": "javascript:alert(7)//" + "a" * 40,
    "device": "<svg onload=alert(8)>",
    "source": "<script>alert('src')</script>, \"quoted\"",
}
SAFE_URL = re.compile(r"^(\.\./)?[A-Za-z0-9][A-Za-z0-9._/-]*\.(html|csv|json|css|js)$")


def write_result(store: ResultStore, checkpoint: str, task: str, seed: int, scale: float, value: float,
                 domain: str = "ct", protocol: str = "linear", metric: str = "accuracy", *, name: str, **spec) -> Path:
    """A result file under a safe file name, whatever the strings inside it (they may hold '/')."""
    job = Job(checkpoint, "a" * 64, task, "1", protocol, "1", scale, seed, "demo")
    path = store.root / name / f"s{seed}-{scale:g}.json"
    write_json(path, {
        "job": job.as_dict(), "metrics": {metric: value, "auc": value / 2},
        "main_metric": {"name": metric, "value": value, "higher_is_better": True},
        "task": {"name": task, "domain": domain}, "counts": {"train_cases": 10, "val_cases": 2},
        "checkpoint": {"name": checkpoint, "pretraining_domain": spec.pop("pretraining_domain", "ct"), **spec},
        "provenance": {"device": spec.get("device", "cpu"), "packages": {"torch": HOSTILE["device"]}}})
    return path


def hostile_workdir(root: Path) -> Workdir:
    """Hostile results next to a natural baseline on the same hostile task, two scales (so plots are
    drawn), a hostile import, a hostile analysis folder and a malformed result with a hostile file name."""
    workdir, h = Workdir(root), HOSTILE
    store = ResultStore(workdir.results)
    for seed, value in ((42, 0.7), (1, 0.8), (2, 0.9)):
        for scale in (1.0, 0.1):
            write_result(store, h["checkpoint"], h["task"], seed, scale, value, h["domain"], h["protocol"], h["metric"],
                         name="hostile", arch=h["arch"], method=h["method"], data=h["data"],
                         description=h["description"], sha256=h["sha256"], format=XSS, device=h["device"])
            write_result(store, "imagenet", h["task"], seed, scale, value - 0.1, h["domain"], h["protocol"],
                         h["metric"], name="base", pretraining_domain="natural")
    (store.root / "<img src=x onerror=alert(9)>.json").write_text("{")
    csv_path = root / "paper.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["checkpoint", "task", "task_version", "protocol", "scale", "seed", "metric", "value",
                         "task_domain", "source"])
        writer.writerows(["paper-ck", "paper-task", "1", "linear", "1", seed, "accuracy", 0.5 + seed / 10, "ct",
                          h["source"]] for seed in (1, 2))
    import_csv(csv_path, workdir)
    analysis = workdir.root / "analysis" / "task<img src=x onerror=alert(10)>"  # file names hold no "/"
    analysis.mkdir(parents=True)
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(11)</script></svg>'  # inert inside <img>
    (analysis / "<b onmouseover=alert(1)>.svg").write_text(svg)
    write_json(analysis / "analysis.json", {"note": XSS, "reuse": {h["checkpoint"]: {
        "linear": {XSS: 0.5}, "rbf": {XSS: 0.25}}}})
    return workdir


def build(workdir: Workdir, out: Path) -> tuple[Path, list[str]]:
    return build_site(ResultStore(workdir.results), out, imported_dir(workdir), workdir.root / "analysis")


class Page(HTMLParser):
    """Every element, attribute and text node of one page, entities decoded as a browser would."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        (self.script_text if self._in_script else self.text).append(data)

    def attribute_values(self) -> str:
        return "".join(v or "" for _, attrs in self.tags for v in attrs.values())


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("hostile")
    index, warnings = build(hostile_workdir(root / "work"), root / "site")
    return index.parent, warnings


@pytest.fixture(scope="module")
def clean_tags(tmp_path_factory) -> set[str]:
    """The element names a site of harmless results uses: a hostile site may use no others."""
    root = tmp_path_factory.mktemp("clean")
    store = ResultStore(root / "results")
    for seed in (42, 1, 2):
        for scale in (1.0, 0.1):
            write_result(store, "mine", "t", seed, scale, 0.8, name="m")
            write_result(store, "imagenet", "t", seed, scale, 0.7, name="b", pretraining_domain="natural")
    analysis = root / "analysis" / "t"
    analysis.mkdir(parents=True)
    (analysis / "reuse.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    write_json(analysis / "analysis.json", {"note": "n", "reuse": {"mine": {"linear": {"s": 0.5}, "rbf": {"s": 0.2}}}})
    (root / "results" / "bad.json").write_text("{")  # the warning list
    index, _ = build_site(store, root / "site", analysis=root / "analysis")
    return {tag for page in index.parent.rglob("*.html") for tag, _ in Page(page.read_text()).tags}


def html_pages(site: Path) -> dict[str, Page]:
    return {str(p.relative_to(site)): Page(p.read_text(encoding="utf-8")) for p in sorted(site.rglob("*.html"))}


def test_hostile_strings_never_become_markup_on_any_page(hostile_site, clean_tags):
    site, _ = hostile_site
    pages = html_pages(site)
    assert {"index.html", "analysis.html"} <= set(pages) and len(pages) >= 6
    for name, page in pages.items():
        raw = (site / name).read_text(encoding="utf-8")
        assert "<script>alert" not in raw and "<img src=x" not in raw and "<svg onload" not in raw, name
        assert {tag for tag, _ in page.tags} <= clean_tags, name
        scripts = [attrs for tag, attrs in page.tags if tag == "script"]
        assert scripts == [{"src": ("../" if "/" in name else "") + "app.js", "defer": None}], name
        assert "".join(page.script_text).strip() == "", f"{name}: inline script content"
        for tag, attrs in page.tags:
            assert not any(a.startswith("on") for a in attrs), f"{name}: <{tag} {attrs}>"
            for key in ("href", "src"):
                url = attrs.get(key)
                assert url is None or SAFE_URL.match(url) or url.startswith("data:image/svg+xml;base64,"), (name, url)


def test_hostile_strings_reach_the_pages_intact_as_text(hostile_site):
    site, _ = hostile_site
    pages = html_pages(site)
    text = {name: "".join(page.text) + page.attribute_values() for name, page in pages.items()}
    everything = "".join(text.values())
    for field, value in HOSTILE.items():
        assert value in everything, f"{field} {value!r} was lost or altered"
    assert HOSTILE["checkpoint"] in text["index.html"] and HOSTILE["data"] in text["index.html"]
    assert HOSTILE["arch"] in text["index.html"]  # emoji and combining marks: no normalisation, no mojibake
    checkpoint_pages = [n for n in pages if n.startswith("checkpoints/x-")]
    assert checkpoint_pages, "a hostile name must get a hashed page name"
    assert HOSTILE["device"] in "".join(text[n] for n in checkpoint_pages)


def test_plots_inside_pages_are_well_formed_svg_with_the_names_as_text(hostile_site):
    site, _ = hostile_site
    task_pages = [p for p in site.glob("tasks/*.html") if "plot" in p.read_text()]
    assert task_pages
    drawn = ""
    for page in task_pages:
        for uri in re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page.read_text()):
            svg = base64.b64decode(uri).decode("utf-8")
            tree = ET.fromstring(svg)  # well-formed: every name was XML-escaped
            assert not [e for e in tree.iter() if e.tag.endswith("script")]
            assert not [a for e in tree.iter() for a in e.attrib if a.startswith("on")]
            drawn += "".join(tree.itertext())
    assert HOSTILE["checkpoint"] in drawn and HOSTILE["task"] in drawn and HOSTILE["metric"] in drawn


def test_downloads_round_trip_hostile_strings_exactly(hostile_site):
    site, _ = hostile_site
    rows = list(csv.DictReader((site / "leaderboard.csv").open(encoding="utf-8", newline="")))
    records = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    for table in (rows, records):
        assert {r["checkpoint"] for r in table} >= {HOSTILE["checkpoint"], "imagenet", "paper-ck"}
        assert {r["task"] for r in table} >= {HOSTILE["task"]}
        assert {r["metric"] for r in table} >= {HOSTILE["metric"]}
        assert {r["protocol"] for r in table} >= {HOSTILE["protocol"]}


def test_the_malformed_file_with_a_hostile_name_is_one_escaped_warning(hostile_site):
    site, warnings = hostile_site
    assert len(warnings) == 1 and "<img src=x onerror=alert(9)>.json" in warnings[0]
    index = Page((site / "index.html").read_text(encoding="utf-8"))
    assert any("<img src=x onerror=alert(9)>.json" in t for t in index.text)


def test_a_hostile_site_rebuilds_to_the_same_bytes(hostile_site, tmp_path):
    site, _ = hostile_site
    again, _ = build(Workdir(site.parent / "work"), tmp_path / "again")
    files = sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.parent) for p in again.parent.rglob("*") if p.is_file())
    for name in files:
        assert (site / name).read_bytes() == (again.parent / name).read_bytes(), name


# ---------------------------------------------------------------- malformed result files

GOOD = {"job": Job("mine", "a" * 64, "t", "1", "linear", "1", 1.0, 42, "demo").as_dict(),
        "metrics": {"accuracy": 0.5}, "checkpoint": {"name": "mine"}, "task": {"domain": "ct"}}


def edited(**changes) -> bytes:
    """GOOD with dotted keys set (or dropped, for None), as the bytes of a file."""
    payload = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        *parents, last = key.split("__")
        section = payload
        for part in parents:
            section = section[part]
        if value is None:
            del section[last]
        else:
            section[last] = value
    return json.dumps(payload).encode()


MALFORMED = {  # case -> (file bytes, a phrase the warning must hold)
    "invalid-json": (b"{not json", "not valid JSON"),
    "truncated": (json.dumps(GOOD).encode()[:60], "not valid JSON"),
    "empty-file": (b"", "not valid JSON"),
    "top-level-array": (b"[1, 2]", "a JSON array, not an object"),
    "other-schema": (b'{"hello": 1}', "no 'job'"),
    "missing-field": (edited(job__seed=None), "no 'job.seed'"),
    "missing-checkpoint": (edited(checkpoint=None), "no 'checkpoint'"),
    "scale-as-string": (edited(job__scale="1.0"), "job.scale is '1.0'"),
    "scale-zero": (edited(job__scale=0), "job.scale is 0"),
    "seed-as-bool": (edited(job__seed=True), "job.seed is true"),
    "seed-negative": (edited(job__seed=-1), "job.seed is -1"),
    "metric-as-string": (edited(metrics={"accuracy": "0.9"}), "metrics['accuracy'] is '0.9'"),
    "metrics-as-list": (edited(metrics=[0.9]), "metrics is [0.9]"),
    "nan-literal": (edited().replace(b"0.5", b"NaN"), "NaN is not JSON"),
    "infinity-literal": (edited().replace(b"0.5", b"-Infinity"), "-Infinity is not JSON"),
    "float-overflow": (edited().replace(b"0.5", b"1e999"), "too large for a float"),
    "huge-integer": (edited().replace(b"0.5", b"1" + b"0" * 400), "metrics['accuracy']"),
    "not-utf8": (b'{"job": "\xff\xfe"}', "not valid UTF-8"),
    "lone-surrogate": (edited(checkpoint={"name": "x"}).replace(b'"x"', b'"\\ud800"'), "lone surrogate"),
    "deeply-nested": (b"[" * 100_000, "not valid JSON"),
    "checkpoint-mismatch": (edited(checkpoint={"name": "other"}), "differs from job.checkpoint"),
    "main-metric-wrong-type": (edited(main_metric={"name": "accuracy", "higher_is_better": "yes"}),
                               "main_metric.higher_is_better is 'yes'"),
    "counts-missing-val": (edited(counts={"train_cases": 3}), "no 'counts.val_cases'"),
}


def good_store(root: Path) -> ResultStore:
    store = ResultStore(root)
    for seed, value in ((42, 0.7), (1, 0.8), (2, 0.9)):
        write_result(store, "mine", "t", seed, 1.0, value, name="mine", arch="resnet18")
    return store


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_result_is_one_named_warning_and_the_rest_builds(case, tmp_path):
    content, phrase = MALFORMED[case]
    store = good_store(tmp_path / "results")
    bad = store.root / "mine" / f"{case}.json"
    bad.write_bytes(content)
    index, warnings = build_site(store, tmp_path / "site")
    assert len(warnings) == 1 and warnings[0].startswith(f"{bad}: ") and "\n" not in warnings[0], warnings
    assert phrase in warnings[0], warnings[0]
    html = index.read_text(encoding="utf-8")
    assert "3 results" in html and "0.800 ± " in html and f"{case}.json" in html


def test_a_malformed_analysis_is_a_warning_not_a_failed_build(tmp_path):
    store = good_store(tmp_path / "results")
    (tmp_path / "analysis" / "t").mkdir(parents=True)
    (tmp_path / "analysis" / "t" / "analysis.json").write_text('{"reuse": {"mine": {"linear": 3}}}')
    index, warnings = build_site(store, tmp_path / "site", analysis=tmp_path / "analysis")
    assert len(warnings) == 1 and "analysis.json: not a readable analysis" in warnings[0]
    assert "0.800 ± " in index.read_text(encoding="utf-8")


@pytest.fixture
def ctbench():
    """``ctbench`` in-process, its error contract included."""
    return lambda *argv: cli.main(list(argv))


@pytest.mark.parametrize("case", ["truncated", "nan-literal", "scale-as-string"])
def test_leaderboard_build_in_process_exits_0_with_one_warning_line(case, tmp_path, capsys, ctbench):
    store = good_store(Workdir(tmp_path).results)
    bad = store.root / "mine" / f"{case}.json"
    bad.write_bytes(MALFORMED[case][0])
    assert ctbench("leaderboard", "build", "--workdir", str(tmp_path)) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "site" / "index.html")
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {bad}: ") and MALFORMED[case][1] in lines[0]


def test_leaderboard_build_cli_names_every_malformed_file_and_exits_0(tmp_path):
    """One real subprocess over the whole matrix: exit 0, one stderr line per bad file, no traceback."""
    store = good_store(Workdir(tmp_path).results)
    for case, (content, _) in MALFORMED.items():
        (store.root / "mine" / f"{case}.json").write_bytes(content)
    proc = run_cli("leaderboard", "build", "--workdir", str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(lines) == len(MALFORMED) == len(proc.stderr.splitlines())
    for case, (_, phrase) in MALFORMED.items():
        named = [line for line in lines if f"/{case}.json: " in line]
        assert len(named) == 1 and phrase in named[0], case
    html = Path(proc.stdout.strip()).read_text(encoding="utf-8")
    assert "3 results" in html and "0.800 ± " in html
