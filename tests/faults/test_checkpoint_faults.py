"""Checkpoint faults: every broken, foreign or hostile weight file ends in one line on stderr that
names the file and the problem, exit code 3, no traceback unless ``--debug``, and nothing is
loaded, run or stored. A few cases go through ``ctbench`` in-process (``cli.main``: the parser,
the error contract and the exit code, without a new interpreter per case); the hostile pickle
also runs as a real process.

Checklist (issue 10) -> tests here; existing ones elsewhere are named where they cover a part:
- truncated .pth / .ckpt zip, legacy pickle, .safetensors: ``test_truncated_*``, ``test_cli_truncated_*``
  (tests/unit/test_formats.py::test_truncated_files_are_refused covers the half-file case)
- wrong format (text, JSON, PNG, .npy, .npz, HDF5, plain pickle, empty, folder): ``test_not_a_checkpoint_*``,
  ``test_cli_not_a_checkpoint_*``; broken structure: ``test_self_referencing_*``, ``test_sparse_*``,
  ``test_two_spellings_*``
- NaN/Inf weights: ``test_non_finite_*``, ``test_cli_non_finite_*`` (unit: test_non_finite_weights_are_refused)
- architecture mismatch, bounded key lists: ``test_mismatch_*``, ``test_cli_mismatch_*``
  (unit: test_wrong_architecture_lists_the_keys; e2e: test_a_wrong_architecture_is_refused_listing_the_keys)
- malicious pickle, every loader path: ``test_malicious_*``, ``test_cli_malicious_*``
- a multi-GB file: ``test_large_safetensors_*``, ``test_zip_pth_is_memory_mapped``
- key-adapter fuzzing: tests/faults/test_checkpoint_key_fuzz.py
"""
from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import pytest
import torch

from benchmark.cli import main as cli
from benchmark.core.errors import EXIT_BAD_CHECKPOINT, CheckpointError
from benchmark.models.formats import CHECKPOINT_FORMATS, detect_format, inspect_checkpoint, load_checkpoint, read_object
from benchmark.models.formats.keys import SHOWN
from tests.cli_helpers import run_cli
from tests.fixtures import checkpoints as fx

LARGE_BYTES = 256 << 20  # big enough that a second copy cannot hide in allocator noise; sparse, so no disk


@pytest.fixture(scope="module")
def model():
    return fx.source_model("resnet18", seed=11)


@pytest.fixture(scope="module")
def good(model, tmp_path_factory) -> dict[str, Path]:
    """Healthy files in the three containers: torch.save zip, Lightning zip (+ args.json), safetensors."""
    out = tmp_path_factory.mktemp("good")
    legacy = out / "legacy.pth"
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    return {"pth": fx.write_timm_pth(model, out), "ckpt": fx.write_solo_learn(model, out / "solo"),
            "safetensors": fx.write_timm_safetensors(model, out), "legacy": legacy}


def refusal(call) -> str:
    """The CheckpointError message of ``call()``, checked to be one line that names the file."""
    with pytest.raises(CheckpointError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and error.value.path is not None and message.startswith(f"{error.value.path}: ")
    return message


def ctbench(capsys, *argv: str) -> tuple[int, list[str]]:
    """``ctbench ARGV`` in-process: its exit code and its stderr lines, after checking the error contract."""
    capsys.readouterr()
    code = cli.main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return code, err


def assert_one_line_refusal(code: int, err: list[str], path: Path, *phrases: str) -> None:
    assert code == EXIT_BAD_CHECKPOINT, err
    assert len(err) == 1 and err[0].startswith(f"ctbench: error: {path}: "), err
    assert all(phrase in err[0] for phrase in phrases), err[0]


# --- truncated files -------------------------------------------------------------------------------

@pytest.mark.parametrize("container", ["pth", "ckpt"])
@pytest.mark.parametrize("keep", [4, 100, "half", "all-but-one"])
def test_truncated_torch_zip_is_named_truncated(good, container, keep):
    """An interrupted copy of a torch.save zip (.pth, or a Lightning .ckpt with args.json beside it)."""
    size = good[container].stat().st_size
    broken = fx.write_truncated(good[container], {"half": size // 2, "all-but-one": size - 1}.get(keep, keep))
    message = refusal(lambda: load_checkpoint(broken))
    assert "truncated" in message and "central directory" in message


def test_truncated_legacy_pickle_is_refused(good):
    """torch.save's pre-1.6 format (no zip): the unpickler runs out of bytes."""
    message = refusal(lambda: load_checkpoint(fx.write_truncated(good["legacy"])))
    assert "not a readable PyTorch checkpoint" in message and "EOF" in message


@pytest.mark.parametrize("keep", [4, 9, "half", "all-but-one"])
def test_truncated_safetensors_says_how_many_bytes_are_missing(good, keep):
    size = good["safetensors"].stat().st_size
    broken = fx.write_truncated(good["safetensors"], {"half": size // 2, "all-but-one": size - 1}.get(keep, keep))
    message = refusal(lambda: load_checkpoint(broken))
    assert "not a readable safetensors file: truncated" in message
    if keep in ("half", "all-but-one"):
        assert f"describes {size:,} bytes, the file has {broken.stat().st_size:,}" in message


def test_cli_truncated_checkpoint_exits_3_with_one_line(good, capsys):
    broken = fx.write_truncated(good["pth"])
    assert_one_line_refusal(*ctbench(capsys, "checkpoints", "inspect", str(broken)), broken, "truncated")
    with pytest.raises(CheckpointError):  # --debug: the exception, with its traceback
        cli.main(["--debug", "checkpoints", "inspect", str(broken)])


# --- not a checkpoint at all --------------------------------------------------------------------------

NOT_CHECKPOINTS = {  # what the file really is -> what the message must say
    "text": "the file is text (starts with 'these are my weights", "json": "the file is text (starts with '{\"arch\"",
    "png": "a PNG image", "npy": "a NumPy .npy array", "npz": "a NumPy .npz archive", "empty": "empty (0 bytes)",
    "plain-pickle": "pickle opcode FRAME", "text-safetensors": "a Git LFS pointer, not the weights",
    "hdf5": "HDF5 file (Keras .h5",
}


@pytest.fixture(scope="module")
def not_checkpoints(tmp_path_factory) -> dict[str, Path]:
    return fx.write_not_checkpoints(tmp_path_factory.mktemp("foreign"))


@pytest.mark.parametrize("kind", list(NOT_CHECKPOINTS))
def test_not_a_checkpoint_is_named_for_what_it_is(not_checkpoints, kind):
    """A wrong file is called what it is, not "could run code" or a bare KeyError from the unpickler."""
    message = refusal(lambda: inspect_checkpoint(not_checkpoints[kind]))
    assert NOT_CHECKPOINTS[kind] in message
    assert "could run code" not in message


def test_a_folder_named_like_a_checkpoint_is_refused(tmp_path):
    folder = tmp_path / "weights.pth"
    folder.mkdir()
    assert "is a folder" in refusal(lambda: load_checkpoint(folder))


def test_cli_not_a_checkpoint_exits_3_with_one_line(not_checkpoints, capsys):
    png = not_checkpoints["png"]
    code, err = ctbench(capsys, "checkpoints", "inspect", str(png), "--json")
    assert_one_line_refusal(code, err, png, "not a checkpoint", "PNG image")


def test_self_referencing_wrapper_is_refused_not_looped(tmp_path):
    """``d["model"] = d`` pickles fine; following wrappers must stop instead of spinning forever."""
    state = {"conv1.weight": torch.zeros(1)}
    state["model"] = state
    torch.save(state, tmp_path / "loop.pth")
    assert "not tensors [model]" in refusal(lambda: load_checkpoint(tmp_path / "loop.pth", arch="resnet18"))


ODD_TENSORS = {"sparse": lambda: torch.zeros(4, 4).to_sparse(), "meta": lambda: torch.empty(64, 3, 7, 7, device="meta"),
               "quantized": lambda: torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)}


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor", "ignore:Validating sparse", "ignore:TypedStorage")
@pytest.mark.parametrize("kind", list(ODD_TENSORS))
def test_sparse_meta_or_quantized_tensors_are_refused(model, tmp_path, kind):
    """weights_only loads them, but the finiteness check and load_state_dict would die in a traceback."""
    state = {**model.state_dict(), "conv1.weight": ODD_TENSORS[kind]()}
    torch.save(state, tmp_path / "odd.pth")
    assert "1 tensors are not plain weights" in refusal(lambda: load_checkpoint(tmp_path / "odd.pth", arch="resnet18"))


def test_a_scalar_where_a_conv_weight_belongs_is_a_mismatch_not_a_crash(tmp_path):
    """Architecture inference reads one weight's shape; a 0-d tensor there once raised IndexError."""
    state = {f"layer{stage}.{block}.conv1.weight": torch.zeros(1)
             for stage, blocks in enumerate((3, 4, 6, 3), start=1) for block in range(blocks)}
    state.update({"layer1.0.conv3.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.tensor(1.0)})
    torch.save(state, tmp_path / "scalar.pth")
    message = refusal(lambda: load_checkpoint(tmp_path / "scalar.pth"))
    assert "backbone keys do not match resnet50" in message and "layer1.0.conv1.weight file scalar" in message


@pytest.mark.parametrize("fmt, prefix", [("timm", "module."), ("radiologynet", "model."), ("study", "encoder.")])
def test_two_spellings_of_one_weight_are_refused_not_overwritten(model, tmp_path, fmt, prefix):
    """``model.conv1.weight`` and ``conv1.weight`` in one file: which is the backbone? Never a silent pick."""
    state = dict(model.state_dict())
    state[prefix + "conv1.weight"] = torch.zeros_like(state["conv1.weight"])
    torch.save({"model_state": state} if fmt == "radiologynet" else state, tmp_path / "twice.pth")
    message = refusal(lambda: load_checkpoint(tmp_path / "twice.pth", arch="resnet18", fmt=fmt))
    assert f"{prefix}conv1.weight" in message and "both become conv1.weight" in message


# --- NaN / Inf --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def non_finite(model, tmp_path_factory) -> list[Path]:
    return fx.write_non_finite(model, tmp_path_factory.mktemp("nan"))


def test_non_finite_weights_are_refused_in_both_containers(non_finite):
    for path in non_finite:
        message = refusal(lambda: load_checkpoint(path))
        assert "non-finite (NaN/Inf) weights in 2 tensors [bn1.running_var, layer2.0.conv1.weight]" in message


def test_cli_non_finite_submit_exits_3_and_stores_nothing(non_finite, tmp_path, capsys):
    path = non_finite[1]
    code, err = ctbench(capsys, "submit", str(path), "--name", "nan", "--arch", "resnet18", "--workdir", str(tmp_path))
    assert_one_line_refusal(code, err, path, "non-finite", "layer2.0.conv1.weight")
    assert not (tmp_path / "submissions").exists()


# --- architecture mismatch --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def foreign_keys(model, tmp_path_factory) -> Path:
    """Every key under another module name (as a ViT's or a renamed wrapper's would be), plus hostile names."""
    state = {f"blocks.{k}": v for k, v in model.state_dict().items()}
    state["evil\nkey"] = torch.zeros(1)  # a newline must not break the one-line error
    state["x" * 10_000] = torch.zeros(1)  # nor a huge name flood it
    path = tmp_path_factory.mktemp("mismatch") / "renamed.pth"
    torch.save(state, path)
    return path


def test_mismatch_lists_a_bounded_number_of_keys_with_counts(foreign_keys, model):
    message = refusal(lambda: load_checkpoint(foreign_keys, arch="resnet18"))
    expected = len(model.state_dict()) - 2  # fc.weight, fc.bias: the head is not part of the backbone
    missing = re.search(r"(\d+) missing \[(.*?)\]", message)
    unexpected = re.search(r"(\d+) unexpected \[(.*?)\]", message)
    assert int(missing.group(1)) == expected and int(unexpected.group(1)) == expected + 2 + 2
    for found, total in ((missing, expected), (unexpected, expected + 4)):
        names = found.group(2).split(", ")
        assert len(names) == SHOWN + 1 and names[-1] == f"... {total - SHOWN} more"
    assert "bn1.bias" in missing.group(2) and "blocks.bn1.bias" in unexpected.group(2)
    assert len(message) < 4000


def test_mismatch_escapes_and_cuts_hostile_key_names(tmp_path):
    state = {"evil\nkey": torch.zeros(1), "y" * 10_000: torch.zeros(1)}
    torch.save(state, tmp_path / "hostile.pth")
    message = refusal(lambda: load_checkpoint(tmp_path / "hostile.pth", arch="resnet18"))
    assert "'evil\\nkey'" in message and "y" * 120 + "..." in message and "y" * 121 not in message


def test_cli_mismatch_submit_exits_3_with_one_line(foreign_keys, tmp_path, capsys):
    code, err = ctbench(capsys, "submit", str(foreign_keys), "--name", "renamed", "--arch", "resnet18",
                        "--workdir", str(tmp_path))
    assert_one_line_refusal(code, err, foreign_keys, "backbone keys do not match resnet18", "missing [",
                            "unexpected [", "more]")
    assert not (tmp_path / "submissions").exists()


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_inspect_of_a_refusable_file_exits_3_with_its_verdict_on_stderr(foreign_keys, non_finite, capsys,
                                                                          as_json):
    """The report goes to stdout (text or JSON); the one-line verdict to stderr, as every refusal."""
    for path, phrase in ((foreign_keys, "missing"), (non_finite[1], "non-finite weights")):
        code, err = ctbench(capsys, "checkpoints", "inspect", str(path), "--arch", "resnet18",
                            *(["--json"] if as_json else []))
        assert_one_line_refusal(code, err, path, "would be refused", phrase)


# --- hostile pickles --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(model, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """One file per loader path, all aimed at the same marker file."""
    out = tmp_path_factory.mktemp("hostile")
    marker = out / "pwned"
    zipped, raw = fx.write_malicious(model, out, marker)
    system_ckpt, metadata_ckpt = fx.write_malicious_lightning(model, out / "lightning", marker)
    renamed = out / "renamed.safetensors"
    renamed.write_bytes(zipped.read_bytes())
    return marker, {"torch-zip": zipped, "raw-pickle": raw, "lightning-system": system_ckpt,
                    "lightning-metadata-names": metadata_ckpt, "pickle-named-safetensors": renamed}


def test_malicious_metadata_names_payload_is_live(tmp_path):
    """The chained payload really runs when unpickled by plain pickle: its refusal below means something."""
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(fx.MetadataNamesPayload(control)))
    assert control.exists()


@pytest.mark.parametrize("kind", ["torch-zip", "raw-pickle", "lightning-system", "lightning-metadata-names",
                                  "pickle-named-safetensors"])
def test_malicious_file_is_refused_by_every_entry_point_and_format(hostile, kind):
    """Detection, inspect, and load under every --format: the file is read once, safely, before any adapter."""
    marker, files = hostile
    path = files[kind]
    calls = [lambda: detect_format(path), lambda: inspect_checkpoint(path)]
    calls += [lambda fmt=fmt: load_checkpoint(path, arch="resnet18", fmt=fmt) for fmt in CHECKPOINT_FORMATS]
    for call in calls:
        message = refusal(call)
        assert "refused" in message or "not a readable safetensors file" in message
    assert not marker.exists()


def test_cli_malicious_is_refused_in_a_real_process_even_when_torch_is_told_to_trust_files(hostile, tmp_path):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns weights_only off where a caller did not set it; ctbench always does."""
    marker, files = hostile
    path = files["lightning-system"]
    proc = run_cli("submit", str(path), "--name", "evil", "--arch", "resnet18", "--workdir", str(tmp_path),
                   env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}, check=False)
    err = proc.stderr.strip().splitlines()
    assert_one_line_refusal(proc.returncode, err, path, "refused", "system")
    assert "Traceback" not in proc.stderr and not marker.exists() and not (tmp_path / "submissions").exists()


# --- a multi-GB file --------------------------------------------------------------------------------

def _mapping_of(tensor: torch.Tensor) -> str:
    """The /proc/self/maps line of the memory ``tensor``'s data lives in."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        low, high = (int(part, 16) for part in line.split()[0].split("-"))
        if low <= address < high:
            return line
    return ""


def _vm(field: str) -> int:
    """A /proc/self/status memory figure in bytes."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) * 1024


def _reset_peak_rss() -> int:
    """Reset this process's peak RSS (VmHWM) to its current RSS, which is returned; skip where Linux lacks it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    return _vm("VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_large_safetensors_is_memory_mapped_and_never_copied(tmp_path):
    """A multi-GB checkpoint must fit in memory once: safetensors maps the file, and nothing on the way
    (the finiteness check above all: a whole-tensor isfinite allocates a tensor-sized abs() copy) makes a
    second full-size copy. Proven on a 256 MiB sparse file: the peak RSS growth of ``inspect`` (read, map
    onto resnet18, finiteness, sha256) stays below 1.5x the file, where one extra copy would make it 2x+."""
    path = fx.write_large_safetensors(tmp_path / "large.safetensors", LARGE_BYTES)
    try:
        (blob,) = read_object(path)[0].values()
        assert blob.numel() * 4 == LARGE_BYTES and str(path) in _mapping_of(blob), "not mapped from the file"
        del blob
        start = _reset_peak_rss()
        report = inspect_checkpoint(path, arch="resnet18")
        growth = _vm("VmHWM") - start
        print(f"\npeak RSS growth while inspecting a {LARGE_BYTES >> 20} MiB safetensors file: "
              f"{growth / 2**20:.0f} MiB ({growth / LARGE_BYTES:.2f}x the file)")
        assert report["finite"] and report["keys"]["unexpected"] == ["blob"]
        assert growth < 1.5 * LARGE_BYTES, f"peak RSS grew {growth / LARGE_BYTES:.2f}x the file size"
    finally:
        path.unlink()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_zip_pth_is_memory_mapped(tmp_path):
    """torch.save zips are read with torch.load(mmap=True, weights_only=True): tensors point into the file."""
    path = tmp_path / "mapped.pth"
    torch.save({"conv1.weight": torch.ones(1 << 20)}, path)
    (tensor,) = read_object(path)[0].values()
    assert str(path) in _mapping_of(tensor)
