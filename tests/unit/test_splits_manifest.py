"""The manifest models: the bytes they write never change (every result records their sha256), and a
manifest of the wrong shape is one ``verify`` problem naming its file."""
import hashlib
import json

import numpy as np
import pytest

from benchmark.data.split_verify import verify
from benchmark.data.splits import BudgetManifest, SplitManifest, make_budget, make_split

# Written by the hand-built payloads the models replaced (ctbench before the pydantic manifests): a change
# here re-keys every recorded result, so it must come with a MANIFEST_VERSION bump, never silently.
GOLDEN = {
    "split.json": "321acb3e0cae499aed93bc3fdb1de4792c83d4bc1cf1c71dd68b3e18308acfd7",
    "seed42/scale-0.5.json": "75ccb4418dc684251e1a0e2c2a1b3b79c81bfbefcdec70d9347c7b70f16f4c34",
    "official/split.json": "ce5421b951c871b947683e3752251766a3fd107eb9e9a74e06c16e822e060d16",
}


def tiny():
    patients = np.repeat([f"P{i}" for i in range(8)], 2)
    return patients, np.repeat(np.arange(8) % 2, 2)


def write_all(root):
    patients, labels = tiny()
    split = make_split("t", "1", "fp", patients, labels, root / "split.json")
    make_budget(split, 42, 0.5, patients, root / "seed42" / "scale-0.5.json")
    official = np.where(np.isin(patients, ["P0", "P1"]), "test", "train")
    make_split("t", "1", "fp", patients, labels, root / "official" / "split.json", official)


def test_manifest_bytes_are_those_of_the_hand_built_payloads(tmp_path):
    write_all(tmp_path)
    for name, sha in GOLDEN.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == sha, name
    assert "official_split" not in json.loads((tmp_path / "split.json").read_text())
    assert json.loads((tmp_path / "official" / "split.json").read_text())["official_split"] is True


def test_written_manifests_validate_against_their_models(tmp_path):
    write_all(tmp_path)
    SplitManifest.model_validate_json((tmp_path / "split.json").read_text())
    SplitManifest.model_validate_json((tmp_path / "official" / "split.json").read_text())
    BudgetManifest.model_validate_json((tmp_path / "seed42" / "scale-0.5.json").read_text())


def tamper(path, edit):
    payload = json.loads(path.read_text())
    payload = edit(payload)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{sha}  {path.name}\n")


def _drop(key):
    return lambda m: {k: v for k, v in m.items() if k != key}


@pytest.mark.parametrize("manifest, edit, expected", [
    ("split.json", _drop("pool_strata"), "no 'pool_strata'"),
    ("split.json", lambda m: {**m, "test_patients": [1, 2]}, "test_patients.0"),
    ("split.json", lambda m: {**m, "note": "hand-edited"}, "'note' is not a manifest field"),
    ("split.json", lambda m: [m], "not a JSON object"),
    ("split.json", lambda m: {**m, "counts": {**m["counts"], "test_cases": "4"}}, "counts.test_cases"),
    ("seed42/scale-0.5.json", lambda m: {**m, "scale": True}, "scale"),
    ("seed42/scale-0.5.json", _drop("val_patients"), "no 'val_patients'"),
])
def test_a_manifest_of_the_wrong_shape_is_one_problem_naming_it(manifest, edit, expected, tmp_path):
    folder = tmp_path / "splits" / "t@1" / "x-m2"
    write_all(folder)
    tamper(folder / manifest, edit)
    report = verify(tmp_path / "splits", tmp_path / "no-slices")
    shape = [p for p in report.problems if "not a valid manifest" in p]
    assert len(shape) == 1 and "\n" not in shape[0], report.problems
    assert shape[0].startswith(f"{folder / manifest}: not a valid manifest (") and expected in shape[0], shape


# Computed with ctbench before budgets gained ``holdout`` and ``unit`` (patient unit, with hold-out, the
# default): those fields are written only when they differ from their defaults, so these bytes never move.
GOLDEN_PATIENT_BUDGETS = {
    "split.json": "fd643c2964c643007d6a1c4d2ebec65b3eaec9b6475f38d7352995ea66b6edfa",
    "seed0/scale-0.1.json": "2b286b0dbe38eccbe4b897cdcd8809d33405800fc3d498cc3b74d930de8f6fe5",
    "seed0/scale-1.json": "f221713d38783e290a9a4f6f7e5b9ca89214648bd8d21e995dfecddddcb8cc16",
    "seed7/scale-0.1.json": "5af3092d3de4823f8c974c4e1ab837db0b32670e741bb36347050b2704ad1e7a",
    "seed7/scale-1.json": "e612a6eb2ac71bc9c592850b7ce78eb1fec01b249da32c34bb293a2afddbc87d",
}


def test_patient_budgets_with_a_hold_out_keep_their_bytes(tmp_path):
    patients = np.repeat([f"P{i:02d}" for i in range(30)], 3)
    labels = np.repeat(np.arange(30) % 3, 3)
    split = make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
    for seed in (0, 7):
        for scale in (0.1, 1.0):
            make_budget(split, seed, scale, patients, tmp_path / f"seed{seed}" / f"scale-{scale:g}.json",
                        holdout=True, unit="patient", case_ids=np.char.add(patients, "-c"))
    for name, sha in GOLDEN_PATIENT_BUDGETS.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == sha, name
    payload = json.loads((tmp_path / "seed0" / "scale-1.json").read_text())
    assert not {"holdout", "unit", "train_cases", "val_cases"} & set(payload)
    assert "shared_patients" not in payload["counts"]
    assert BudgetManifest.model_validate(payload).holdout is True
