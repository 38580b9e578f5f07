"""Golden checks for the ``video`` component: source-frame preprocessing (frame cap + stretch fit); the
``da3frames`` cases (render-frame resize) are optional."""

from __future__ import annotations

from inspatio_cli.video import Fit

from .common import GoldenCase, assert_close


def skip_reason(case: GoldenCase) -> str | None:
    if case.case_id.startswith("da3frames"):
        return ("optional: render-frame resize with OpenCV Lanczos-4; we resize render frames with the same "
                "bilinear-antialias path as the source (see DESIGN.md 'Golden tests')")
    return None


OFFICIAL_FRAME_CAP = 1000  # the official loader keeps the first 1000 frames; ours has --max-frames instead


def check(case: GoldenCase) -> None:
    frames = case["input.frames_uint8"][:OFFICIAL_FRAME_CAP]
    height, width = case.config["video_size"]
    fit = Fit.make(tuple(frames.shape[1:3]), (height, width), "stretch")
    atol, rtol = case.tolerance()
    assert_close("source_video", fit.frames(frames), case["output.source_video"], atol, rtol)
