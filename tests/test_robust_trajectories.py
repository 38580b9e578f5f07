"""Regression cases found by fuzzing the trajectory parsers (tests/test_fuzz_parsers.py), and enormous files:
each is refused with one ``error:`` line naming the file, exit code 3, and no warning printed around it."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest

from inspatio_cli.cameras.loader import load_trajectory
from inspatio_cli.cli import main
from inspatio_cli.errors import TrajectoryError


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy_header(shape: tuple, descr: str = "<f8", tail: str = "") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    data = buffer.getvalue()
    return data[:len(data) - len(tail) - 1] + tail.encode() + b"\n" if tail else data + bytes(64)


def _damaged_member() -> bytes:
    data = bytearray(_npz(c2w=np.eye(4)[None].repeat(2, 0)))
    name = data.index(b"c2w.npy")
    data[name + 6] = ord("x")  # the local header's file name no longer matches the directory's
    return bytes(data)


def _central_field(offset: int, value: int) -> bytes:
    """An npz whose zip central directory entry has the 2-byte field at ``offset`` set to ``value``
    (6: version needed, 8: flags, 10: compression method)."""
    data = bytearray(_npz(c2w=np.eye(4)[None].repeat(2, 0)))
    entry = data.index(b"PK\x01\x02")
    data[entry + offset:entry + offset + 2] = value.to_bytes(2, "little")
    return bytes(data)


EYE = np.eye(4)[None].repeat(2, 0)
ROW = "1 0 0 0 0 1 0 0 0 0 1 0"

CASES = [
    ("npz whose member is damaged", "p.npz", _damaged_member(), "not a readable NumPy file"),
    ("npz member of an unknown zip version", "p.npz", _central_field(6, 0xFF), "not a readable NumPy file"),
    ("npz member marked encrypted", "p.npz", _central_field(8, 1), "not a readable NumPy file"),
    ("npz member of an unknown compression", "p.npz", _central_field(10, 99), "not a readable NumPy file"),
    ("npz holding an object array", "p.npz", _npz(c2w=np.array([None, 1], dtype=object)), "not a readable NumPy"),
    ("npy header with a syntax error", "p.npy", _npy_header((2, 4, 4), tail="|"), "not a readable NumPy file"),
    ("npy header claiming 16e12 values", "p.npy", _npy_header((10 ** 12, 4, 4)), "not a readable NumPy file"),
    ("npz K without size", "p.npz", _npz(c2w=EYE, K=np.eye(3)), "stored with size"),
    ("npz with a 2-D size", "p.npz", _npz(c2w=EYE, K=np.eye(3), size=np.ones((2, 4, 4))), "stored with size"),
    ("npz with a NaN size", "p.npz", _npz(c2w=EYE, K=np.eye(3), size=np.array([np.nan, 4])), "stored with size"),
    ("npz with text K", "p.npz", _npz(c2w=EYE, K=np.array([["a"] * 3] * 3), size=np.array([4, 4])), "K must be"),
    ("npz with infinite K", "p.npz", _npz(c2w=EYE, K=np.full((3, 3), np.inf), size=np.array([4, 4])),
     "intrinsics must be finite"),
    ("RE10K focal of 1e308", "c.txt", f"0 1e308 0.9 0.5 0.5 0 0 {ROW}\n1 0.5 0.9 0.5 0.5 0 0 {ROW}\n".encode(),
     "intrinsics must be finite"),
    ("nerfstudio height beyond float range", "p.json",
     b'{"render_height": 1' + b"0" * 400 + b', "render_width": 4, "camera_path": []}', "render_height must be"),
    ("JSON integer beyond the digit limit", "p.json", b'{"keyframes": [{"at": ' + b"9" * 5000 + b"}]}",
     "a number too long"),
    ("orbit keyframe beyond float32", "o.txt", b"0 1e39\n0 0\n1 1\n", "beyond +-1e+06"),
    ("orbit keyframes far beyond any path", "o.txt", b"19289506416 0 8 0 0\n0 0\n0 1\n", "beyond +-1e+06"),
    ("pose of 1e300", "poses.txt", b"1e300 0 0 0 0 1e300 0 0 0 0 1 0\n", "not a rigid transform"),
    ("look_at target 1e157 away", "k.json",
     b'{"keyframes": [{"at": 0, "position": [777e154, 0, 0], "look_at": [0, 0, 0]},'
     b' {"at": 1, "position": [1e308, 0, 0], "look_at": [-1e308, 0, 0]}]}', "too far from the camera"),
]


@pytest.mark.parametrize("name, file, data, message", CASES, ids=[c[0] for c in CASES])
def test_refused_in_one_line_without_warnings(tmp_path, capsys, name, file, data, message):
    path = tmp_path / file
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SystemExit) as done:
            main(["trajectory", "convert", str(path), "--to", "tcw", "-o", str(tmp_path / "out.txt"), "--frames", "2"])
    out, err = capsys.readouterr()
    assert done.value.code == 3, err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}") and message in err, err
    assert not (tmp_path / "out.txt").exists()


def test_huge_but_finite_look_at_position_is_usable(tmp_path):
    path = tmp_path / "k.json"
    path.write_text('{"units": "normalized", "keyframes": [{"at": 0, "position": [777e154, 0, 0], "look_at": [0, 0, 0]},'
                    ' {"at": 1, "position": [0, 0, 0], "look_at": [0, 0, 1]}]}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = load_trajectory(path).resolve(3).rel_c2w[0].numpy()
    assert np.allclose(first[:3, 2], [-1, 0, 0])  # looks back along -x at the origin


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:  # sparse: no disk space used
        fh.truncate((64 << 20) + 1)
    with pytest.raises(TrajectoryError, match="too large for a trajectory"):
        load_trajectory(path)


def test_too_many_poses_are_refused_at_the_first_extra_line(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text(f"{ROW}\n" * 100_001)
    with pytest.raises(TrajectoryError, match="at most 100000") as info:
        load_trajectory(path, fmt="matrices")
    assert info.value.line == 100_001
    assert os.path.getsize(path) < 64 << 20
