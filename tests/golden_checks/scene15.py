"""Golden checks for ``warp15_scene_*`` (component ``scene15``): the v1.5 scene depth folder (REFERENCE-v1.5.md R2).

Dispatched on the ``case`` metadata (``scene_depth_png``, ``scene_depth_mp4``, ``scene_cameras``). Codes,
RGB bytes, ``metadata.txt`` and camera matrices exact; decoded depth exact (float64 then float32). Each case
writes the folder with our encoder, reads it back with our decoder, and decodes the official files too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from inspatio_cli.depth.scene15 import (INTRINSICS_FILE, POSES_FILE, RANGE_FILE, decode_depth, depth_to_rgb,
                                        encode_depth, format_range, image_depth_codes, iter_depth_video, load_matrix,
                                        read_depth_png, read_scene_depth, save_matrix, video_depth_range,
                                        write_scene_depth)

from .common import GoldenCase, assert_close


def check(case: GoldenCase) -> None:
    name = case.meta["case"]
    for prefix, run in (("scene_depth_png", _check_png), ("scene_depth_mp4", _check_mp4),
                        ("scene_cameras", _check_cameras)):
        if name.startswith(prefix):
            run(case)
            return
    raise AssertionError(f"unknown scene15 case {name!r}")


def _exact(name: str, actual: np.ndarray | torch.Tensor, expected: torch.Tensor) -> None:
    actual = torch.as_tensor(np.asarray(actual))
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    assert_close(name, actual, expected, 0.0, 0.0)


def _cameras(views: int) -> tuple[np.ndarray, np.ndarray]:
    """Placeholder cameras for the depth cases (identity poses, a plain K)."""
    K = np.float32([[50, 0, 28], [0, 50, 16], [0, 0, 1]])
    return np.tile(K, (views, 1, 1)), np.tile(np.eye(4, dtype=np.float32), (views, 1, 1))


def _check_png(case: GoldenCase) -> None:
    """``convert_image``: min 0, max the largest valid depth, unknown stored as 0; PNG files and decode."""
    source = case["input.source_depths"].numpy()
    codes, depth_range = image_depth_codes(source)
    _exact("depth_uint16", codes, case["output.depth_uint16"])
    assert format_range(*depth_range) == case.config["metadata_txt"]
    _exact("metadata_minmax", torch.tensor(depth_range, dtype=torch.float64), case["output.metadata_minmax"])
    _exact("depth (decoded)", decode_depth(case["output.depth_uint16"].numpy(), *depth_range), case["output.depth"])
    with tempfile.TemporaryDirectory() as tmp:
        official = Path(tmp) / "official.png"
        official.write_bytes(case["input.depth_png_bytes_view0"].numpy().tobytes())
        _exact("official PNG", read_depth_png(official), case["output.depth_uint16"][0])
        folder = Path(tmp) / "depth"
        write_scene_depth(folder, source, *_cameras(len(source)), kind="image")
        assert (folder / RANGE_FILE).read_text() == case.config["metadata_txt"]
        scene = read_scene_depth(folder, size=(case.config["H"], case.config["W"]))
        assert scene.kind == "image" and scene.num_views == case.config["V"]
        _exact("depth (written and read back)", scene.depth(), case["output.depth"])


def _check_mp4(case: GoldenCase) -> None:
    """``convert_video``: clip-wide range, R high / G low / B 0 frames, lossless video, decode."""
    source = case["input.depth_float"].numpy()
    assert_close("range_float", torch.tensor(video_depth_range(source), dtype=torch.float64),
                 case["output.range_float"], 0.0, 0.0)
    assert format_range(*video_depth_range(source)) == case.config["metadata_txt"]
    depth_range = tuple(case["output.metadata_minmax"].tolist())
    codes = encode_depth(source, *depth_range)
    _exact("quantized", codes, case["output.quantized"])
    _exact("rgb", depth_to_rgb(codes), case["output.rgb"])
    with tempfile.TemporaryDirectory() as tmp:
        official = Path(tmp) / "depth.mp4"
        official.write_bytes(case["input.depth_mp4_bytes"].numpy().tobytes())
        decoded = np.stack(list(iter_depth_video(official)))
        _exact("quantized (official depth.mp4)", decoded, case["output.quantized"])
        _exact("decoded_bgr", depth_to_rgb(decoded)[..., ::-1].copy(), case["output.decoded_bgr"])
        _exact("depth (official depth.mp4)", decode_depth(decoded, *depth_range), case["output.depth"])
        folder = Path(tmp) / "depth"
        write_scene_depth(folder, source, *_cameras(len(source)), kind="video", fps=case.config["fps"])
        assert (folder / RANGE_FILE).read_text() == case.config["metadata_txt"]
        scene = read_scene_depth(folder, size=(case.config["H"], case.config["W"]))
        assert scene.kind == "video" and scene.num_views == case.config["N"]
        _exact("depth (written and read back)", scene.depth(), case["output.depth"])


def _check_cameras(case: GoldenCase) -> None:
    """``save_estimated_cameras`` (float32, ``%.9g``, w2c padded to 4x4) then ``load_matrix``."""
    K, w2c = case["input.intrinsic_raw"].numpy(), case["input.extrinsic_raw"].numpy()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        official = {INTRINSICS_FILE: case.meta["source_intrinsics_txt"], POSES_FILE: case.meta["source_tcw_txt"]}
        for name, text in official.items():
            (folder / name).write_text(text)
        _exact("source_k (official text)", load_matrix(folder / INTRINSICS_FILE, 3), case["output.source_k"])
        _exact("source_tcw (official text)", load_matrix(folder / POSES_FILE, 4), case["output.source_tcw"])
        ours = folder / "ours"
        views = len(K)
        write_scene_depth(ours, np.ones((views, 4, 6), dtype=np.float32), K, w2c, kind="image")
        for name, text in official.items():
            assert (ours / name).read_text() == text, f"{name}: our text differs from the official one"
        scene = read_scene_depth(ours)
        _exact("source_k", scene.K, case["output.source_k"])
        _exact("source_tcw", scene.source_tcw, case["output.source_tcw"])
        save_matrix(folder / "again.txt", scene.source_tcw)
        assert (folder / "again.txt").read_text() == official[POSES_FILE]
