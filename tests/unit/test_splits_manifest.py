"""The manifest models: the bytes they write never change (every result records their sha256), and a
manifest of the wrong shape is one ``verify`` problem naming its file."""
import hashlib
import json

import numpy as np
import pytest

from benchmark.data.splits import BudgetManifest, SplitManifest, make_budget, make_split, verify

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
