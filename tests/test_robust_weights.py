"""Damaged, foreign and malicious weight files, across every loader and ``inspatio models verify``: each is
refused with a WeightsError naming the file (exit 4 in the CLI), and a pickle payload never runs."""

from __future__ import annotations

import os
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import WEIGHT_FILES
from inspatio_cli.cli import main
from inspatio_cli.depth.checkpoints import load_model
from inspatio_cli.errors import WeightsError
from inspatio_cli.models.dit import load_generator
from inspatio_cli.models.t5 import load_t5
from inspatio_cli.models.tae import load_tae
from inspatio_cli.models.vae import load_vae

LOADERS = {
    "generator": load_generator, "vae": load_vae, "tae": load_tae, "text-encoder": load_t5,
    "depth": lambda path: load_model("small", [path]),
}
OTHER = {"generator": "vae", "vae": "tae", "tae": "text-encoder", "text-encoder": "generator", "depth": "vae"}


class Payload:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _pickles(folder: Path) -> dict[str, Path]:
    """Malicious ``.pth`` files in the three pickle layouts torch.load meets; all share one marker file."""
    marker = folder / "PAYLOAD-RAN"
    files = {name: folder / f"{name}.pth" for name in ("zip", "legacy", "plain")}
    torch.save({"weight": torch.zeros(2), "x": Payload(marker)}, files["zip"])
    torch.save({"x": Payload(marker)}, files["legacy"], _use_new_zipfile_serialization=False)
    files["plain"].write_bytes(pickle.dumps({"weight": Payload(marker)}))
    return files


def _as_integers(source: Path, target: Path) -> Path:
    """``source``'s tensors as int32 (right keys and shapes, wrong kind of number)."""
    if source.suffix == ".safetensors":
        save_file({k: v.to(torch.int32) for k, v in load_file(str(source)).items()}, str(target))
    else:
        torch.save({k: v.to(torch.int32) for k, v in torch.load(source, weights_only=True).items()}, target)
    return target


def _truncated(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return target


@pytest.fixture(scope="module")
def files(tiny_weights) -> dict[str, Path]:
    return {name: tiny_weights / rel for name, rel in WEIGHT_FILES.items()}


@pytest.mark.parametrize("kind", ["zip", "legacy", "plain"])
@pytest.mark.parametrize("name", list(LOADERS))
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, name, kind):
    path = _pickles(tmp_path)[kind]
    with warnings.catch_warnings(record=True) as caught, \
            pytest.raises(WeightsError, match="refused to load: the pickle holds code") as info:
        warnings.simplefilter("always")
        LOADERS[name](path)
    assert str(path) in info.value.one_line() and not caught
    assert not (tmp_path / "PAYLOAD-RAN").exists()


@pytest.mark.parametrize("name", list(LOADERS))
def test_truncated_files_are_refused(tmp_path, files, name):
    for source in (files["generator"], files["vae"]):  # a .safetensors and a .pth
        path = _truncated(source, tmp_path / f"cut{source.suffix}")
        with pytest.raises(WeightsError, match="truncated or corrupt"):
            LOADERS[name](path)


@pytest.mark.parametrize("name", list(LOADERS))
def test_a_file_that_is_no_checkpoint_is_called_so(tmp_path, name):
    """Text or JSON under a weights name is not a pickle at all: no claim that it holds code."""
    path = tmp_path / "tokenizer.pth"
    path.write_text('{"model": {"type": "Unigram"}}')
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as info:
        LOADERS[name](path)
    assert str(path) in info.value.one_line()


@pytest.mark.parametrize("name", [n for n in LOADERS if n != "depth"])
def test_integer_weights_are_refused(tmp_path, files, name):
    path = _as_integers(files[name], tmp_path / f"int{files[name].suffix}")
    with pytest.raises(WeightsError, match=r"of the wrong type: .* int32 \(expected floating point\)"):
        LOADERS[name](path)


@pytest.mark.parametrize("name", list(LOADERS))
def test_another_models_file_is_refused(files, name):
    other = files[OTHER[name]]
    with pytest.raises(WeightsError) as info:
        LOADERS[name](other)
    assert str(other) in info.value.one_line()


def test_models_verify_reports_each_bad_file_in_one_line(tmp_path, files, capsys):
    root = tmp_path / "weights"
    shutil.copytree(files["generator"].parents[1], root)
    bad = {name: root / WEIGHT_FILES[name] for name in ("generator", "vae", "tae", "text-encoder")}
    _truncated(files["generator"], bad["generator"])
    _as_integers(files["vae"], bad["vae"])
    bad["tae"].write_bytes(_pickles(tmp_path)["plain"].read_bytes())
    shutil.copy(files["vae"], bad["text-encoder"])
    with pytest.raises(SystemExit) as done:
        main(["models", "verify", "--weights-dir", str(root), "--only", "generator,vae,tae,text-encoder",
              "--json"])
    out, err = capsys.readouterr()
    assert done.value.code == 1 and "Traceback" not in err
    errors = err.splitlines()
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors)
    for path in bad.values():
        assert sum(str(path) in line for line in errors) == 1
    assert any(str(bad["tae"]) in line and "refused to load: the pickle holds code" in line for line in errors)
    assert any(str(bad["generator"]) in line and "unreadable safetensors header" in line for line in errors)
    assert not (tmp_path / "PAYLOAD-RAN").exists()


def test_rerender_with_a_damaged_generator_fails_before_any_work(tmp_path, files, capsys):
    root = tmp_path / "weights"
    shutil.copytree(files["generator"].parents[1], root)
    _truncated(files["generator"], root / WEIGHT_FILES["generator"])
    from test_preview_pipeline import scene_files

    scene = scene_files(tmp_path, 9, 12)
    output = tmp_path / "out.mp4"
    with pytest.raises(SystemExit) as done:
        main(["rerender", str(scene["video"]), "-t", str(scene["traj"]), "-o", str(output), "--weights-dir",
              str(root), "--size", "48x80", "--device", "cpu", "--prompt", "a room", "--quiet"])
    _, err = capsys.readouterr()
    assert done.value.code == 4 and err.count("\n") == 1 and "truncated or corrupt" in err
    assert not output.exists() and not output.with_suffix(".json").exists()


def test_a_generator_whose_shapes_give_no_model_is_refused(tmp_path, files):
    """A width no head count divides (found by the hostile set: an internal ValueError from the config)."""
    state = load_file(str(files["generator"]))
    key = "model.patch_embedding.weight"
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    path = tmp_path / "odd.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError, match="tensor shapes give no valid model") as info:
        load_generator(path)
    assert str(path) in info.value.one_line()
