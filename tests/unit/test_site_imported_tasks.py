"""Issue 20 item 5: imported tasks are first-class. The study's published per-seed runs (body
region, LiTS Dice per class, BraTS Dice per region, ChestX-ray8 AUC), imported with their main
metrics, appear on the overview and on a page per task; a task without a main metric still gets
its page with every metric and an overview row per metric marked as headline."""
import csv
import re

import pytest

from benchmark.core.errors import DataError
from benchmark.core.workdir import Workdir
from benchmark.results.store import ResultStore
from leaderboard import stats
from leaderboard.aggregate import load, summarize, tidy
from leaderboard.importer import import_csv, imported_dir
from leaderboard.site import build_site, slug

HEADER = ["checkpoint", "task", "task_version", "protocol", "scale", "seed", "metric", "value", "task_domain",
          "checkpoint_domain", "main_metric", "higher_is_better", "headline", "source"]
STUDY = {  # task -> (domain, metrics, main metric)
    "study-body-region": ("ct", ["accuracy", "macro_f1"], "accuracy"),
    "study-lits": ("ct", ["dice_liver", "dice_tumor", "dice_mean"], "dice_mean"),
    "study-brats": ("mri", ["dice_et", "dice_tc", "dice_wt"], "dice_wt"),
    "study-chestxray8": ("xray", ["auc"], "auc"),
}
CHECKPOINTS = {"imagenet": ("natural", 0.0), "study-ct": ("ct", 0.05)}


def study_rows(extra_task: bool = True) -> list[list]:
    rows = []
    for task, (domain, metrics, main) in STUDY.items():
        for checkpoint, (ck_domain, shift) in CHECKPOINTS.items():
            for scale in (1.0, 0.1):
                for seed in (0, 1, 2):
                    for index, metric in enumerate(metrics):
                        value = 0.6 + shift + 0.02 * index + 0.005 * seed - 0.1 * (scale < 1)
                        rows.append([checkpoint, task, "1", "linear", scale, seed, metric, round(value, 4), domain,
                                     ck_domain, main, "true", "", "Study, Table 2"])
    if extra_task:  # no main metric; two of its three metrics are marked headline; lower is better
        for checkpoint, (ck_domain, shift) in CHECKPOINTS.items():
            for seed in (0, 1):
                for metric, headline in (("hd95_a", "yes"), ("hd95_b", "1"), ("volume_error", "")):
                    rows.append([checkpoint, "study-surface", "1", "linear", 1.0, seed, metric, 5 - 10 * shift + seed,
                                 "mri", ck_domain, "", "false", headline, "Study, Table 5"])
    return rows


def write_csv(path, rows, header=HEADER):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def study_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    workdir = Workdir(root / "w")
    import_csv(write_csv(root / "study.csv", study_rows()), workdir)
    index, warnings = build_site(ResultStore(workdir.results), root / "site", imported_dir(workdir))
    assert not warnings
    return index


def test_the_studys_imported_runs_appear_on_the_overview_with_their_main_metrics(study_site):
    html = study_site.read_text()
    overview = html.split('<table id="overview"', 1)[1].split("</table>", 1)[0]
    for task, (_, _, main) in STUDY.items():
        assert re.search(rf'href="tasks/{re.escape(slug(task + ".v1"))}.html">{task}</a> · linear '
                         rf'<span class="n">{main} @ 1</span>', overview), task
    for _, metrics, main in STUDY.values():
        for metric in set(metrics) - {main}:
            assert f"{metric} @ 1" not in overview  # only the main metric reaches the overview


def test_every_imported_task_has_its_page(study_site):
    pages = {p.name for p in (study_site.parent / "tasks").glob("*.html")}
    assert pages == {f"{slug(t + '.v1')}.html" for t in [*STUDY, "study-surface"]}
    lits = (study_site.parent / "tasks" / "study-lits.v1.html").read_text()
    assert "dice_mean (higher is better)" in lits and "scale 0.1" in lits and '<img class="plot"' in lits


def test_a_task_without_a_main_metric_gets_every_metric_and_an_overview_row_per_headline(study_site):
    page = (study_site.parent / "tasks" / "study-surface.v1.html").read_text()
    assert "No main metric" in page and "(lower is better)" in page
    for metric in ("hd95_a", "hd95_b", "volume_error"):
        assert f'data-metric="{metric}"' in page
    overview = study_site.read_text().split('<table id="overview"', 1)[1].split("</table>", 1)[0]
    assert "hd95_a @ 1" in overview and "hd95_b @ 1" in overview and "volume_error @ 1" not in overview
    # lower is better: study-ct's smaller distances are better than the baseline's, not worse
    assert "tier-worse" not in page.split('data-metric="hd95_a"', 1)[1].split("</table>", 1)[0]


def test_a_task_without_a_main_metric_ranks_nowhere(tmp_path):
    workdir = Workdir(tmp_path / "w")
    import_csv(write_csv(tmp_path / "study.csv", study_rows()), workdir)
    results = load(ResultStore(workdir.results), imported_dir(workdir))[0]
    ranked = stats.overall(summarize(tidy(results)), stats.main_metrics(results)).ranked
    assert set(ranked["n_cells"]) == {4}  # the four tasks with a main metric (the site ranks no import at all)


@pytest.mark.parametrize("change, problem", [
    ({10: "dice_wt"}, "line 2: main_metric 'dice_wt' is not a metric of task study-chestxray8's rows"),
    ({11: "maybe"}, "line 2: higher_is_better 'maybe' is not true or false"),
])
def test_bad_main_metric_columns_name_their_line(tmp_path, change, problem):
    rows = [[*r] for r in study_rows(extra_task=False) if r[1] == "study-chestxray8"]
    for row in rows:
        for index, value in change.items():
            row[index] = value
    with pytest.raises(DataError, match=re.escape(problem)):
        import_csv(write_csv(tmp_path / "bad.csv", rows), Workdir(tmp_path / "w"))


def test_a_main_metric_must_be_the_same_on_every_row_and_agree_with_a_registered_task(tmp_path):
    rows = [[*r] for r in study_rows(extra_task=False) if r[1] == "study-lits"]
    rows[1][10] = "dice_liver"
    with pytest.raises(DataError, match="line 2: task study-lits is given main_metrics dice_liver, dice_mean"):
        import_csv(write_csv(tmp_path / "bad.csv", rows), Workdir(tmp_path / "w"))
    registered = [["x", "phantom-body-region", "1", "linear", 1, 0, "macro_f1", 0.5, "", "", "macro_f1", "", "", ""]]
    with pytest.raises(DataError, match="line 2: main_metric macro_f1 contradicts task phantom-body-region's"):
        import_csv(write_csv(tmp_path / "reg.csv", registered), Workdir(tmp_path / "w"))
