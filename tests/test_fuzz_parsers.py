"""Fuzzing every parser of user files: trajectory formats (each one, and format detection), time-edit
options, depth cache files and prompt files. Property: a valid result or an InspatioError, nothing else.

The default run does a light pass (``fuzzing.LIGHT_EXAMPLES`` per parser, fixed inputs); ``pytest -m fuzz
-s`` does ``fuzzing.FULL_EXAMPLES`` per parser and prints the figures.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from fuzzing import EXAMPLES, fuzz, garbage, json_inputs, mutated, number_token, text_inputs
from inspatio_cli.geometry import se3
from inspatio_cli.cameras.loader import export_text, list_presets, load_trajectory
from inspatio_cli.cameras.timecontrol import TimeControl
from inspatio_cli.depth import DepthResult
from inspatio_cli.models.tokenizer import clean_prompt
from inspatio_cli.text import read_prompt_file

PRESETS = list_presets()
ORBIT_SEEDS = [p.read_text() for p in PRESETS.values() if p.suffix == ".txt"]
_EXAMPLE = load_trajectory("orbit_left").resolve(9, size=(48, 64))
TCW_SEED, C2W_SEED = export_text(_EXAMPLE, "tcw"), export_text(_EXAMPLE, "c2w")
NERFSTUDIO_SEED = json.loads(export_text(_EXAMPLE, "nerfstudio", fallback_K=np.diag([50.0, 50.0, 1.0])))
KEYFRAME_SEEDS = [json.loads(p.read_text()) for p in PRESETS.values() if p.suffix == ".json"] + [
    json.loads(export_text(_EXAMPLE, "json"))]
RE10K_SEED = "https://www.youtube.com/watch?v=xyz\n" + "".join(
    f"{33366 * i} 0.5 0.9 0.5 0.5 0 0 " + " ".join(f"{v:.9g}" for v in se3.invert(m.numpy())[:3].reshape(12)) + "\n"
    for i, m in enumerate(_EXAMPLE.rel_c2w))
TEXT_SEEDS = ORBIT_SEEDS + [TCW_SEED, C2W_SEED, RE10K_SEED]
MOVES_SEED = "# a moves path\nforward:4, turn-left*0.5:3\nforward+look-up*2:2  # an arc\nstill:1\n"


def _resolve_and_check(path, fmt):
    """Parse, resolve for the file's own length (or 17 frames), and check the result is usable."""
    source = load_trajectory(path, fmt=fmt)
    trajectory = source.resolve(source.frame_count or 17, fps=24.0, size=(48, 64))
    c2w = trajectory.rel_c2w
    assert torch.isfinite(c2w).all() and bool(se3.is_rigid(c2w.numpy(), atol=1e-3).all())
    assert trajectory.K is None or torch.isfinite(trajectory.K).all()
    return trajectory


def _file_target(tmp_path, name, fmt):
    path = tmp_path / name

    def target(data: bytes):
        path.write_bytes(data)
        return _resolve_and_check(path, fmt)
    return target


@pytest.mark.parametrize("fmt, name, seeds", [
    ("orbit", "traj.txt", ORBIT_SEEDS),
    ("matrices", "poses.txt", [C2W_SEED]),
    ("tcw", "target_tcw.txt", [TCW_SEED]),
    ("re10k", "clip.txt", [RE10K_SEED]),
    pytest.param("moves", "path.moves", [MOVES_SEED], marks=pytest.mark.fuzz),  # long paths: slow for the light run
    (None, "traj.txt", TEXT_SEEDS),
    (None, "target_tcw.txt", TEXT_SEEDS),
])
@EXAMPLES
def test_text_trajectory_parsers(tmp_path, fmt, name, seeds, examples):
    stats = fuzz(f"trajectory {fmt or 'detected'} ({name})", _file_target(tmp_path, name, fmt), text_inputs(seeds),
                 examples)
    assert stats.examples >= examples and not stats.unexpected


@pytest.mark.parametrize("fmt, seeds", [
    ("keyframes", KEYFRAME_SEEDS),
    ("nerfstudio", [NERFSTUDIO_SEED]),
    (None, KEYFRAME_SEEDS + [NERFSTUDIO_SEED]),
])
@EXAMPLES
def test_json_trajectory_parsers(tmp_path, fmt, seeds, examples):
    stats = fuzz(f"trajectory {fmt or 'detected'} (.json)", _file_target(tmp_path, "path.json", fmt),
                 json_inputs(seeds), examples)
    assert stats.examples >= examples and not stats.unexpected


_DTYPES = ["<f8", "<f4", "<f2", "<i8", "|u1", "|b1", "<c16", "<U3", "|V8", "<M8[s]", "|O"]


@st.composite
def numpy_files(draw) -> bytes:
    """``.npy``/``.npz`` bytes: arrays of odd shapes and dtypes (object arrays, which need a pickle, too)
    holding NaN/inf/huge values, under the expected or unexpected names, sometimes truncated or damaged."""
    def array():
        if draw(st.booleans()):  # valid poses with a few entries replaced
            poses = _EXAMPLE.rel_c2w.numpy()[:, :draw(st.sampled_from([3, 4]))].copy()
            for _ in range(draw(st.integers(0, 2))):
                index = tuple(draw(st.integers(0, n - 1)) for n in poses.shape)
                poses[index] = draw(st.floats(allow_nan=True, allow_infinity=True))
            with np.errstate(over="ignore"):
                return poses.astype(draw(st.sampled_from(["<f8", "<f4", "<f2"])))
        shape = draw(st.one_of(st.sampled_from([(2, 4, 4), (3, 3, 4), (1, 4, 4), (0, 4, 4), (4, 4), (3, 3), (3,)]),
                               st.lists(st.integers(0, 5), max_size=4).map(tuple)))
        dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
        values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8))
        base = np.resize(np.array(values), shape) if int(np.prod(shape)) else np.zeros(shape)
        if dtype.kind == "O":
            return base.astype(object)
        with np.errstate(all="ignore"):
            if dtype.kind in "fc":
                return base.astype(dtype)
            return np.nan_to_num(base).astype(dtype) if dtype.kind in "iub" else np.zeros(shape, dtype)
    buffer = io.BytesIO()
    layout = draw(st.sampled_from(["npy", "npz", "header"]))
    if layout == "header":  # a bare header that claims any shape and type, followed by a few bytes
        shape = tuple(draw(st.lists(st.integers(0, 2 ** 63 - 1), max_size=3)))
        descr = draw(st.sampled_from(["<f8", "|O", "<U999999999", "<f8,<i4", "garbage"]))
        np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
        buffer.write(bytes(draw(st.integers(0, 256))))
    elif layout == "npy":
        np.save(buffer, array(), allow_pickle=True)
    else:
        names = draw(st.lists(st.sampled_from(["c2w", "w2c", "poses", "K", "size", "other"]), min_size=0,
                              max_size=4, unique=True))
        np.savez(buffer, **{n: array() for n in names})
    data = buffer.getvalue()
    edit = draw(st.sampled_from(["none", "none", "truncate", "flip"]))
    if edit == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif edit == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data


@pytest.mark.parametrize("name", ["poses.npy", "poses.npz"])
@EXAMPLES
def test_numpy_trajectory_parser(tmp_path, name, examples):
    stats = fuzz(f"trajectory npy ({name})", _file_target(tmp_path, name, None),
                 st.one_of(numpy_files(), numpy_files(), garbage()), examples)
    assert stats.examples >= examples and not stats.unexpected


def _spec(parts: int) -> st.SearchStrategy[str]:
    """Time-edit option text: mostly ``parts`` small colon-separated numbers (a factor such as ``0.5`` last for
    three parts), sometimes nasty tokens, a wrong count of parts or any short text."""
    small = st.integers(0, 40).map(str)
    usual = st.lists(small, min_size=parts, max_size=parts).map(":".join)
    if parts == 3:
        usual = st.tuples(small, small, st.sampled_from(["0.5", "2", "0.25", "3"])).map(":".join)
    token = st.one_of(st.integers(-2, 60).map(str), number_token())
    odd = st.lists(token, min_size=parts - 1, max_size=parts + 1).map(":".join)
    return st.one_of(usual, usual, usual, odd, st.text(max_size=12))


@EXAMPLES
def test_time_edit_options(examples):
    options = st.fixed_dictionaries({
        "freeze": st.lists(_spec(2), max_size=2), "slow": st.lists(_spec(3), max_size=2),
        "reverse": st.lists(_spec(2), max_size=2),
        "extend": st.sampled_from(["none", "none", "hold", "loop", "pingpong", "official", "bogus"]),
        "min_frames": st.one_of(st.just(0), st.integers(-5, 400)), "frames": st.integers(0, 80)})

    def target(o):
        control = TimeControl.from_options(freeze=o["freeze"], slow=o["slow"], reverse=o["reverse"],
                                           extend=o["extend"], min_frames=o["min_frames"])
        edited = control.edited_map(o["frames"])
        mapped = control.extend_map(edited)
        assert len(mapped) >= len(edited) and ((mapped >= 0) & (mapped < o["frames"])).all()
        return mapped

    stats = fuzz("time edits (--freeze/--slow/--reverse/--extend)", target, options, examples)
    assert stats.examples >= examples and not stats.unexpected


def _depth_seed(folder) -> bytes:
    """The bytes of a valid, uncompressed 3-frame depth cache file."""
    t, h, w = 3, 6, 8
    result = DepthResult(depth=torch.rand(t, h, w) + 0.5, K=torch.eye(3).expand(t, 3, 3).clone(),
                         c2w=torch.eye(4).expand(t, 4, 4).clone(), confidence=torch.rand(t, h, w),
                         meta={"model": "fuzz"})
    return result.save(folder / "seed.depth.safetensors").read_bytes()


@st.composite
def damaged(draw, seed: bytes) -> bytes:
    """``seed`` with a few bytes overwritten, a range removed, or truncated."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["byte", "cut", "truncate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("name", ["scene.depth.safetensors", "scene.depth.safetensors.gz"])
@EXAMPLES
def test_depth_files(tmp_path, name, examples):
    import gzip

    seed = _depth_seed(tmp_path)
    path = tmp_path / name
    packed = name.endswith(".gz")

    def target(data: bytes):
        path.write_bytes(gzip.compress(data, mtime=0) if packed and data[:1] != b"\x1f" else data)
        return DepthResult.load(path)

    stats = fuzz(f"depth file ({name})", target, st.one_of(damaged(seed), damaged(seed), garbage()), examples)
    assert stats.examples >= examples and not stats.unexpected


@EXAMPLES
def test_prompt_files(tmp_path, examples):
    path = tmp_path / "prompt.txt"

    def target(data: bytes):
        path.write_bytes(data)
        text = read_prompt_file(path)
        assert isinstance(text, str) and clean_prompt(text)
        return text

    seeds = ["A quiet street at dusk, warm lights.\n", "# not a comment\nline two\n"]
    stats = fuzz("prompt file", target, st.one_of(garbage(), mutated(seeds)), examples)
    assert stats.examples >= examples and not stats.unexpected
