"""The feature-space analysis: CKA's defining properties, feature reuse on a tiny task,
who-knew-what on hand-made predictions, and byte-identical figures."""
import dataclasses

import numpy as np
import pytest
import torch

from benchmark.analysis import plots
from benchmark.analysis.activations import STAGES, channel_groups, stage_activations
from benchmark.analysis.agreement import correctness, pattern_table
from benchmark.analysis.cka import linear_cka, rbf_cka
from benchmark.analysis.report import analysed_rows, write_outputs
from benchmark.analysis.reuse import feature_reuse, finetune_copy, stage_cka
from benchmark.analysis.similarity import filter_uniqueness, pairwise_cka
from benchmark.core.errors import ConfigError
from benchmark.core.hashing import state_sha256
from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import JobContext
from benchmark.models.backbones import create_backbone

CPU = Accelerator(torch.device("cpu"))
CK = CheckpointSpec(name="tiny", arch="test_resnet", pretraining_domain="none")
TASK = TaskSpec(name="bright", version="1", domain="ct", kind="classification", class_names=["dark", "bright"],
                metrics=["accuracy"], main_metric="accuracy")
# A short but brisk finetune: enough steps at a high rate that the backbone visibly moves.
PROFILE = dataclasses.replace(PROFILES["demo"], step_budgets={}, training_overrides={
    **PROFILES["demo"].training_overrides, "lr": 1e-2, "epochs": 4, "max_steps": 8, "selection": "last"})


@pytest.fixture(scope="module")
def activations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12))
    return x, x @ rng.normal(size=(12, 8))  # y: a linear function of x, fewer features


# --- CKA ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cka", [linear_cka, rbf_cka])
def test_cka_of_a_matrix_with_itself_is_one_and_cka_is_symmetric(cka, activations):
    x, y = activations
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert cka(x, y) == pytest.approx(cka(y, x), abs=1e-12)
    assert 0.0 <= cka(x, y) <= 1.0


def test_linear_cka_ignores_orthogonal_transforms_and_isotropic_scaling(activations):
    x, y = activations
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y), abs=1e-10)
    assert linear_cka(3.7 * x, y) == pytest.approx(linear_cka(x, y), abs=1e-10)
    assert linear_cka(x + 5.0, y) == pytest.approx(linear_cka(x, y), abs=1e-10)  # centring


def test_rbf_cka_ignores_orthogonal_transforms_and_scaling(activations):
    """The bandwidth follows the median distance, so scaling the inputs scales it along."""
    x, y = activations
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    assert rbf_cka(2.5 * x @ q, y) == pytest.approx(rbf_cka(x, y), abs=1e-10)


@pytest.mark.parametrize("cka,ceiling", [(linear_cka, 0.05), (rbf_cka, 0.2)])
def test_cka_with_unrelated_noise_is_small(cka, ceiling):
    """Small, not zero: the biased HSIC keeps a floor that shrinks with n, higher for a narrow RBF."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 10))
    noise = cka(x, rng.normal(size=(400, 10)))
    assert noise < ceiling
    assert cka(x, x[:, :5] @ rng.normal(size=(5, 7))) > noise + 0.25  # related features score far above noise


def test_cka_of_constant_activations_is_undefined():
    x = np.random.default_rng(3).normal(size=(10, 4))
    assert np.isnan(linear_cka(x, np.ones((10, 3))))
    assert np.isnan(rbf_cka(x, np.ones((10, 3))))
    with pytest.raises(ValueError):
        linear_cka(x, x[:5])


# --- activations, reuse, similarity -------------------------------------------------------------

def _slices(n=48, size=32, seed=0) -> SliceSet:
    """Blocky random textures, the label says which half is brighter: easy, and unlike plain
    brightness the images vary in more than one direction, so finetuning has features to move."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], n // 2)
    textures = np.kron(rng.uniform(0, 0.6, (n, 3, 8, 8)), np.ones((1, 1, size // 8, size // 8)))
    left = (np.arange(size) < size // 2)[None, :].repeat(size, 0)
    images = textures + 0.4 * np.where(labels[:, None, None, None] == 1, left, ~left)
    return SliceSet(images.astype(np.float16), labels, np.asarray([f"p{i // 2}" for i in range(n)]),
                    np.asarray([f"c{i}" for i in range(n)]), "k")


def _backbone(seed=0):
    torch.manual_seed(seed)
    return create_backbone("test_resnet")


def _context(slices: SliceSet) -> JobContext:
    rows = np.arange(len(slices))
    return JobContext(TASK, CK, slices, rows[:28], rows[28:36], rows[36:], 42, features=lambda: None,
                      accel=CPU, profile=PROFILE)


def test_stage_activations_are_pooled_channel_major_and_leave_the_model_alone():
    model, slices = _backbone(), _slices(n=8)
    before = state_sha256(model)
    acts = stage_activations(model, slices.images, CK, CPU, 3)
    assert list(acts) == list(STAGES)
    assert [a.shape for a in acts.values()] == [(8, 32 * 4), (8, 48 * 4), (8, 192 * 4), (8, 96 * 4)]
    assert state_sha256(model) == before and not model._forward_hooks
    assert [g.shape[1] for g in channel_groups(acts["layer2"], 4)] == [48, 48, 48, 48]  # 12 channels x 4 cells
    with pytest.raises(ConfigError, match="ResNet"):
        stage_activations(torch.nn.Sequential(torch.nn.Identity()), slices.images, CK, CPU, 4)


def test_an_untouched_copy_scores_one_and_finetuning_lowers_cka_somewhere():
    slices, model = _slices(), _backbone()
    ctx = _context(slices)
    untouched = state_sha256(model)
    before, reuse = feature_reuse(model, ctx, ctx.test)
    assert state_sha256(model) == untouched  # the copy trained, the original did not
    copy_of_it = stage_activations(_backbone(), slices.images, CK, CPU, 16, ctx.test)
    same = stage_cka(before, copy_of_it)
    assert all(v == pytest.approx(1.0, abs=1e-9) for kind in same.values() for v in kind.values())
    assert set(reuse) == {"linear", "rbf", "finetune_metrics", "selected_epoch"}
    assert min(reuse["linear"].values()) < 0.95, reuse
    assert all(0 <= v <= 1 for kind in ("linear", "rbf") for v in reuse[kind].values())


def test_finetune_copy_trains_a_copy_the_same_way_every_time():
    slices, model = _slices(), _backbone()
    first, outcome = finetune_copy(model, _context(slices))
    again, _ = finetune_copy(model, _context(slices))
    assert state_sha256(first) == state_sha256(again) != state_sha256(model)
    assert outcome.predictions["probabilities"].shape == (12, 2)


def test_pairwise_cka_is_a_symmetric_matrix_with_ones_on_the_diagonal():
    slices = _slices(n=8)
    acts = {name: stage_activations(_backbone(seed), slices.images, CK, CPU, 16) for name, seed in
            (("a", 0), ("b", 1), ("c", 0))}
    matrices = pairwise_cka(acts)
    assert list(matrices) == list(STAGES)
    for matrix in map(np.array, matrices.values()):
        assert matrix.shape == (3, 3)
        np.testing.assert_allclose(matrix, matrix.T)
        np.testing.assert_allclose(np.diag(matrix), 1.0)
        assert matrix[0, 2] == pytest.approx(1.0)  # the same weights


def test_filter_uniqueness_is_zero_for_copied_filters_and_high_for_independent_ones():
    rng = np.random.default_rng(4)
    block = rng.normal(size=(50, 3, 4))
    copies = np.concatenate([block] * 4, axis=1).reshape(50, -1)  # 4 groups of the same 3 channels
    assert filter_uniqueness(copies, 4) == pytest.approx(0.0, abs=1e-9)
    assert filter_uniqueness(rng.normal(size=(400, 12 * 4)), 4) > 0.8


def test_analysed_rows_are_a_fixed_even_subsample():
    rows = np.arange(100, 1100)
    assert analysed_rows(rows, 2000) is rows
    picked = analysed_rows(rows, 10)
    assert len(picked) == 10 and picked[0] == 100 and picked[-1] == 1099
    np.testing.assert_array_equal(picked, analysed_rows(rows, 10))


# --- who knew what ------------------------------------------------------------------------------

def test_who_knew_what_counts_patterns_and_their_independent_expectation():
    y = np.array([0, 1, 2, 0])
    probs = {
        "a": np.eye(3)[[0, 1, 2, 1]],  # right, right, right, wrong
        "b": np.eye(3)[[0, 0, 2, 1]],  # right, wrong, right, wrong
    }
    correct = {name: correctness("classification", y, {"probabilities": p}) for name, p in probs.items()}
    table = pattern_table(correct)
    assert table["accuracy"] == {"a": 0.75, "b": 0.5}
    rows = {r["pattern"]: r for r in table["patterns"]}
    assert list(rows) == ["11", "10", "01", "00"]
    assert {k: r["observed_count"] for k, r in rows.items()} == {"11": 2, "10": 1, "01": 0, "00": 1}
    assert rows["00"]["expected_fraction"] == pytest.approx(0.25 * 0.5)
    assert rows["10"]["right"] == ["a"]
    assert sum(r["expected_fraction"] for r in rows.values()) == pytest.approx(1.0)
    assert sum(r["observed_fraction"] for r in rows.values()) == pytest.approx(1.0)


def test_multilabel_is_right_only_on_an_exact_match_and_segmentation_is_refused():
    y = np.array([[1, 0], [1, 1]])
    p = np.array([[0.9, 0.2], [0.9, 0.4]])
    np.testing.assert_array_equal(correctness("multilabel", y, {"probabilities": p}), [True, False])
    with pytest.raises(ValueError):
        correctness("segmentation", y, {"masks": y})


# --- outputs ------------------------------------------------------------------------------------

def _payload(who_knew_what: dict) -> dict:
    stages = list(STAGES)
    return {
        "settings": {"stages": stages, "uniqueness_groups": 4},
        "reuse": {"a": {"linear": dict(zip(stages, [0.9, 0.8, 0.5, None])), "rbf": dict(zip(stages, [1, .9, .4, .2]))}},
        "pairwise": {"checkpoints": ["a", "b"], "linear": {s: [[1.0, 0.5], [0.5, 1.0]] for s in stages}},
        "uniqueness": {"a": dict(zip(stages, [0.1, 0.2, 0.3, 0.4])), "b": dict(zip(stages, [0.2, None, 0.3, 0.1]))},
        "who_knew_what": who_knew_what,
    }


def test_outputs_are_byte_identical_across_renders(tmp_path):
    table = {**pattern_table({"a": np.array([1, 0, 1], bool), "b": np.array([1, 1, 0], bool)}),
             "protocol": "finetune", "scale": 1.0, "seed": 42}
    write_outputs(tmp_path / "one", _payload(table))
    write_outputs(tmp_path / "two", _payload(table))
    names = ["analysis.json", "pairwise.svg", "reuse.svg", "uniqueness.svg", "who_knew_what.svg"]
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == names
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    svg = (tmp_path / "one" / "reuse.svg").read_text()
    assert svg.startswith("<?xml") and "<dc:date>" not in svg


def test_a_skipped_who_knew_what_still_renders_deterministically(tmp_path):
    skipped = {"protocol": "finetune", "scale": 1.0, "seed": 42, "skipped": "no stored predictions"}
    one, two = (plots.render_svg(plots.draw_who_knew_what(skipped), tmp_path / name, (6, 3)) for name in "ab")
    assert one.read_bytes() == two.read_bytes()


def test_the_analysis_runs_on_a_fixed_thread_count_whatever_the_caller_has(monkeypatch):
    """Its finetuned copy and CKA sums moved with torch's default (the core count) between 1 and 2 cores."""
    import torch

    from benchmark.analysis import report
    from benchmark.core.specs import RunSpec

    seen = []
    monkeypatch.setattr(report, "_analyze", lambda *args, **kwargs: seen.append(torch.get_num_threads()) or {})
    before = torch.get_num_threads()
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            report.analyze(None, [], "phantom-body-region", RunSpec(checkpoints=[], tasks=[], device="cpu"))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert seen == [report.ANALYSIS_THREADS] * 2
