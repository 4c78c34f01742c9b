"""Issue 20 item 3: every row says where it came from (verified / local / self-reported /
imported), who submitted it and which bundle held it; only verified and local rows are ranked."""
import json
import re

from benchmark.results.store import ResultStore
from leaderboard.importer import import_csv, imported_dir
from leaderboard.site import build_site, slug
from tests.unit.site_helpers import provenance_workdir


def build(tmp_path):
    workdir = provenance_workdir(tmp_path / "w")
    csv_path = tmp_path / "paper.csv"
    csv_path.write_text("checkpoint,task,task_version,protocol,scale,seed,metric,value,checkpoint_domain,task_domain\n"
                        + "".join(f"paper-ck,ct-task,1,linear,1,{s},accuracy,0.99,ct,ct\n" for s in (1, 2)))
    import_csv(csv_path, workdir)
    index, warnings = build_site(ResultStore(workdir.results), tmp_path / "site", imported_dir(workdir),
                                 None, workdir.root / "ingested")
    assert not warnings
    return index


def test_every_row_carries_its_status_submitter_and_bundle_link(tmp_path):
    index = build(tmp_path)
    html = index.read_text()
    for status in ("verified", "local", "self-reported", "imported"):
        assert f'data-status="{status}"' in html and f'class="status status-{status}"' in html
    assert "Ada &lt;ada@example.org&gt;" in html and "Bob" in html  # free text, escaped
    assert 'id="bundle-' + "b" * 16 + '"' in html and 'href="index.html#bundle-' + "c" * 16 + '"' in html
    assert '<select id="status-filter">' in html
    task_page = (index.parent / "tasks" / f"{slug('ct-task.v1')}.html").read_text()
    assert 'href="../index.html#bundle-' + "b" * 16 + '"' in task_page and 'data-status="self-reported"' in task_page
    checkpoint_page = (index.parent / "checkpoints" / "ct-self.html").read_text()
    assert "self-reported" in checkpoint_page and "Bob" in checkpoint_page


def test_only_verified_and_local_rows_are_ranked(tmp_path):
    html = build(tmp_path).read_text()
    overall = html.split('<table id="overall"', 1)[1].split("</table>", 1)[0]
    ranked = set(re.findall(r"<td>([a-z-]+)</td><td class=\"num\">[0-9.]+</td><td class=\"num\">", overall))
    assert ranked == {"imagenet", "ct-local", "ct-verified"}  # ct-self would win, paper-ck too: neither ranks
    domain_view = html.split('<table id="domain-view"', 1)[1].split("</table>", 1)[0]
    assert 'class="unranked"' in domain_view and "ct-self" in domain_view  # shown, marked


def test_the_exports_carry_the_status(tmp_path):
    index = build(tmp_path)
    records = json.loads((index.parent / "leaderboard.json").read_text())
    by_name = {r["checkpoint"]: r for r in records}
    assert by_name["ct-verified"]["status"] == "verified" and by_name["ct-verified"]["bundle_sha256"] == "b" * 64
    assert by_name["ct-self"]["submitter"] == "Bob" and by_name["paper-ck"]["status"] == "imported"
    assert by_name["imagenet"]["status"] == "local"


def test_a_provenance_site_rebuilds_to_the_same_bytes(tmp_path):
    index = build(tmp_path)
    first = {p: p.read_bytes() for p in sorted(index.parent.rglob("*")) if p.is_file()}
    build(tmp_path)
    assert {p: p.read_bytes() for p in sorted(index.parent.rglob("*")) if p.is_file()} == first
