import csv
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main as cli
from benchmark.core.errors import DataError
from benchmark.core.workdir import Workdir
from benchmark.results.job import Job
from benchmark.results.store import ResultStore
from leaderboard.aggregate import TIDY_COLUMNS, load, tidy
from leaderboard.export import export
from leaderboard.importer import ImportRow, imported_dir
from leaderboard.stats import leaderboard_table

TASK = "phantom-body-region"  # a registered task: its domain and main metric come from the registry
HEADER = ",".join(TIDY_COLUMNS)


@pytest.fixture
def ctbench():
    """``main`` in-process: parser, error contract, exit code."""
    return lambda *argv: cli.main(list(argv))


def stored_workdir(root, values=((42, 0.8), (1, 0.85), (2, float("nan")))):
    store = ResultStore(Workdir(root).results)
    for checkpoint, shift in (("imagenet", 0.0), ("random", -0.3)):
        for seed, value in values:
            job = Job(checkpoint, "a" * 64, TASK, "1", "linear", "1", 0.1, seed, "demo")
            store.write(job, {
                "job": job.as_dict(), "metrics": {"accuracy": value + shift, "auc": 0.6},
                "main_metric": {"name": "accuracy", "value": value + shift, "higher_is_better": True},
                "task": {"domain": "ct"}, "counts": {"train_cases": 10, "val_cases": 2},
                "checkpoint": {"name": checkpoint, "pretraining_domain": "natural" if shift == 0 else "none"},
            }, {"y_true": np.zeros(1)})
    return store


def imported_frame(root) -> pd.DataFrame:
    workdir = Workdir(root)
    return tidy(load(ResultStore(workdir.results), imported_dir(workdir))[0])


def write_csv(path, text):
    path.write_text(text)
    return path


def test_export_then_import_into_a_fresh_workdir_gives_the_same_per_seed_values(tmp_path, ctbench):
    store = stored_workdir(tmp_path / "a")
    buffer = io.StringIO()
    export(store, "csv", buffer)
    exported = write_csv(tmp_path / "exported.csv", buffer.getvalue())
    assert ctbench("results", "import", str(exported), "--workdir", str(tmp_path / "b")) == 0
    original = tidy(load(store)[0])
    again = imported_frame(tmp_path / "b")
    pd.testing.assert_frame_equal(again[TIDY_COLUMNS], original[TIDY_COLUMNS])
    assert again["imported"].all() and set(again["source"]) == {"exported.csv"}
    table = leaderboard_table(load(ResultStore(tmp_path / "b" / "results"), imported_dir(Workdir(tmp_path / "b")))[0])
    accuracy = table[(table["checkpoint"] == "imagenet") & (table["metric"] == "accuracy")].iloc[0]
    assert accuracy["baseline"] == "random" and accuracy["n"] == 2 and accuracy["imported"]


def test_reimporting_is_idempotent_and_an_export_imported_back_counts_no_seed_twice(tmp_path, ctbench):
    store = stored_workdir(tmp_path)
    buffer = io.StringIO()
    export(store, "csv", buffer)
    exported = write_csv(tmp_path / "exported.csv", buffer.getvalue())
    assert ctbench("results", "import", str(exported), "--workdir", str(tmp_path)) == 0
    first = {p.name: p.read_bytes() for p in imported_dir(Workdir(tmp_path)).iterdir()}
    assert ctbench("results", "import", str(exported), "--workdir", str(tmp_path)) == 0
    assert {p.name: p.read_bytes() for p in imported_dir(Workdir(tmp_path)).iterdir()} == first
    frame = imported_frame(tmp_path)
    assert len(frame) == len(tidy(load(store)[0])) and not frame["imported"].any()


def test_imported_rows_are_marked_with_their_source_and_unknown_tasks_need_a_domain(tmp_path, ctbench):
    path = write_csv(tmp_path / "paper.csv", f"{HEADER},task_domain,checkpoint_domain,source\n"
                     "theirs,their-task,1,linear,1,0,auc,0.91,xray,ct,Smith et al. 2024\n"
                     "theirs,their-task,1,linear,1,1,auc,0.93,xray,ct,Smith et al. 2024\n"
                     f"theirs,{TASK},1,linear,0.1,42,accuracy,0.5,,,\n")
    assert ctbench("results", "import", str(path), "--workdir", str(tmp_path)) == 0
    frame = imported_frame(tmp_path)
    assert frame.set_index("task")["source"].to_dict() == {"their-task": "Smith et al. 2024", TASK: "paper.csv"}
    results, _ = load(ResultStore(tmp_path / "results"), imported_dir(Workdir(tmp_path)))
    mine = next(r for r in results if r.job.task == "their-task")
    assert mine.task.domain == "xray" and mine.checkpoint.pretraining_domain == "ct"
    assert mine.main_metric.name == "auc" and mine.imported.source == "Smith et al. 2024"


@pytest.mark.parametrize("body, problem", [
    (f"{HEADER}\nx,unknown-task,1,linear,1,0,auc,0.9\n", "line 2: unknown task 'unknown-task'"),
    ("checkpoint,task,task_version,protocol,scale,seed,metric\n", "line 1: missing column(s) value"),
    (f"{HEADER},colour\n", "line 1: unknown column(s) colour"),
    (f"{HEADER}\nx,{TASK},1,linear,1,0,accuracy,0.9\nx,{TASK},1,linear,1,1,accuracy,high\n",
     "line 3: value 'high' is not a number"),
    (f"{HEADER}\nx,{TASK},1,linear,0,0,accuracy,0.9\n", "line 2: scale 0 is not a fraction in (0, 1]"),
    (f"{HEADER}\nx,{TASK},1,linear,1.5,0,accuracy,0.9\n", "line 2: scale 1.5 is not a fraction in (0, 1]"),
    (f"{HEADER}\nx,{TASK},1,linear,1,0,accuracy,0.9\nx,{TASK},1,linear,1,0,accuracy,0.8\n",
     "line 3: accuracy of x on phantom-body-region@1 linear scale 1 seed 0 is 0.8 here but 0.9 on line 2"),
    (f"{HEADER}\nx,{TASK},1,linear,1,zero,accuracy,0.9\n", "line 2: seed 'zero' is not an integer"),
    (f"{HEADER},task_domain\nx,{TASK},1,linear,1,0,accuracy,0.9,mri\n", "line 2: task_domain mri contradicts"),
    (f"{HEADER}\n", "holds a header but no rows"),
])
def test_bad_input_is_one_line_naming_file_and_line_exit_2_and_nothing_written(tmp_path, ctbench, capsys, body,
                                                                               problem):
    path = write_csv(tmp_path / "bad.csv", body)
    assert ctbench("results", "import", str(path), "--workdir", str(tmp_path / "w")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"ctbench: error: {path}: ") and problem in error
    assert not (tmp_path / "w").exists()


def test_a_value_contradicting_a_stored_result_is_refused(tmp_path, ctbench, capsys):
    stored_workdir(tmp_path)
    path = write_csv(tmp_path / "other.csv", f"{HEADER}\nimagenet,{TASK},1,linear,0.1,42,accuracy,0.1\n")
    assert ctbench("results", "import", str(path), "--workdir", str(tmp_path)) == 2
    assert "line 2:" in capsys.readouterr().err and not imported_dir(Workdir(tmp_path)).exists()


def test_the_leaderboard_export_includes_imported_rows(tmp_path, ctbench, capsys):
    path = write_csv(tmp_path / "theirs.csv", f"{HEADER},task_domain,checkpoint_domain\n" + "".join(
        f"{ck},their-task,1,linear,1,{seed},auc,{value},ct,{domain}\n"
        for ck, domain, values in (("imagenet", "natural", (0.7, 0.72, 0.71)), ("ct-net", "ct", (0.8, 0.83, 0.82)))
        for seed, value in enumerate(values)))
    assert ctbench("results", "import", str(path), "--workdir", str(tmp_path)) == 0
    capsys.readouterr()
    assert ctbench("leaderboard", "export", "--workdir", str(tmp_path)) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["checkpoint"], r["baseline"]) for r in rows] == [("ct-net", "imagenet"), ("imagenet", "")]
    assert float(rows[0]["p_welch"]) < 0.05


def test_an_import_row_is_typed_and_checked_in_column_order(tmp_path):
    raw = {"checkpoint": " theirs ", "task": TASK, "task_version": "1.2", "protocol": "linear", "scale": "0.5",
           "seed": "3", "metric": "auc", "value": "nan", "task_domain": "", "source": ""}
    row = ImportRow.from_csv(tmp_path / "paper.csv", 2, raw)
    assert (row.checkpoint, row.scale, row.seed, row.value, row.task_domain, row.source) == (
        "theirs", 0.5, 3, None, None, "paper.csv")
    with pytest.raises(DataError, match=r"line 4: task 'no/name' is not a valid name"):
        ImportRow.from_csv(tmp_path / "paper.csv", 4, {**raw, "task": "no/name", "scale": "2", "seed": "x"})
    with pytest.raises(DataError, match=r"line 5: task_version 'v1' is not a version like 1 or 1.2"):
        ImportRow.from_csv(tmp_path / "paper.csv", 5, {**raw, "task_version": "v1"})
    with pytest.raises(DataError, match=r"line 6: checkpoint_domain 'cats' is not one of ct, natural, none, mixed"):
        ImportRow.from_csv(tmp_path / "paper.csv", 6, {**raw, "checkpoint_domain": "cats"})


def test_reading_imports_back_does_not_need_the_importer():
    """aggregate reads imports through imported.py; importer.py builds on aggregate, never the reverse."""
    code = "import sys, leaderboard.aggregate; assert 'leaderboard.importer' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
