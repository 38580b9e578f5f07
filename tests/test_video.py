"""Video I/O: probing, decoding (rotation, VFR, ranges), fitting, atomic H.264 writing, audio passthrough."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from decoded import read_video
from inspatio_cli.errors import VideoError
from inspatio_cli.video import Fit, VideoWriter, as_rate, iter_frames, probe, to_uint8, write_video
from media import make_audio_only, make_clip, pattern

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("fps", [24, 25, Fraction(30000, 1001), 30, 60])
def test_round_trip_keeps_frames_and_fps(tmp_path, fps):
    frames = pattern(12, 64, 96)
    path = tmp_path / "clip.mp4"
    assert write_video(path, frames, fps, crf=10) == 12
    info = probe(path)
    assert (info.width, info.height, info.frame_count) == (96, 64, 12)
    assert info.rate == as_rate(fps)
    assert abs(info.duration - 12 / float(fps)) < 1e-3
    assert not info.variable_frame_rate and not info.has_audio
    video = read_video(path)
    assert video.frames.shape == frames.shape
    assert np.allclose(video.timestamps, np.arange(12) / float(fps), atol=1e-3)
    assert _psnr(video.frames, frames) > 35


@pytest.mark.parametrize("size", [(33, 47), (17, 16), (50, 31)])
def test_odd_sizes_round_trip(tmp_path, size):
    frames = pattern(5, *size)
    path = write_video(tmp_path / "odd.mp4", frames, 25, crf=5) and tmp_path / "odd.mp4"
    info = probe(path)
    assert (info.height, info.width) == size
    assert info.pix_fmt == "yuv444p"
    assert _psnr(read_video(path).frames, frames) > 35


def test_lossless_writer_is_near_exact(tmp_path):
    frames = pattern(4, 32, 48)
    write_video(tmp_path / "mask.mp4", frames, 24, lossless=True)
    assert np.abs(read_video(tmp_path / "mask.mp4").frames.astype(int) - frames).max() <= 2


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    frames = pattern(3, 48, 80)
    path = make_clip(tmp_path / "rot.mp4", frames, 25, rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation
    expected = np.rot90(frames[0], k=rotation // 90)
    assert (info.height, info.width) == expected.shape[:2]
    got = read_video(path).frames[0]
    assert got.shape == expected.shape and _psnr(got, expected) > 30


def test_portrait_video(tmp_path):
    frames = pattern(4, 96, 54)
    info = probe(make_clip(tmp_path / "portrait.mp4", frames, 30))
    assert (info.width, info.height) == (54, 96)


def test_variable_frame_rate_timestamps(tmp_path):
    pts = [0, 1, 2, 5, 6, 9, 10, 11, 15, 16]
    path = make_clip(tmp_path / "vfr.mp4", pattern(10, 32, 48), 25, pts=pts, time_base=Fraction(1, 25))
    info = probe(path)
    assert info.variable_frame_rate and info.frame_count == 10
    assert np.allclose(read_video(path).timestamps, np.array(pts) / 25, atol=1e-6)


def test_ranges_by_index_and_time(tmp_path):
    path = make_clip(tmp_path / "c.mp4", pattern(20, 32, 48), 10)
    assert read_video(path, start_frame=5, max_frames=4).num_frames == 4
    video = read_video(path, start_time=0.5, end_time=1.2)
    assert video.num_frames == 7 and abs(video.timestamps[0] - 0.5) < 1e-6
    assert list(iter_frames(path, max_frames=0)) == []
    with pytest.raises(VideoError, match="no frames in the requested range"):
        read_video(path, start_frame=100)


def test_audio_is_reported_and_passed_through_trimmed(tmp_path):
    source = make_clip(tmp_path / "a.mp4", pattern(50, 32, 48), 25, audio_seconds=2.0)
    info = probe(source)
    assert info.has_audio and info.audio_codec == "aac" and info.audio_sample_rate == 44100
    out = tmp_path / "out.mp4"
    write_video(out, pattern(25, 32, 48), 25, audio_from=source, audio_start=0.5)
    import av

    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        seconds = sum(p.duration for p in container.demux(audio) if p.duration) * float(audio.time_base)
    assert 0.9 <= seconds <= 1.05


def test_audio_from_silent_source_writes_video_only(tmp_path):
    source = make_clip(tmp_path / "a.mp4", pattern(5, 32, 48), 25)
    out = tmp_path / "out.mp4"
    write_video(out, pattern(5, 32, 48), 25, audio_from=source)
    assert not probe(out).has_audio


def test_float_frames_are_written_like_the_official_quantiser(tmp_path):
    x = torch.linspace(-1, 1, 2 * 3 * 16 * 16).reshape(2, 3, 16, 16)
    u8 = to_uint8(x)
    assert u8.shape == (2, 16, 16, 3)
    assert np.array_equal(u8, ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 25) as writer:
            writer.write(pattern(3, 32, 48))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_crf_and_empty_output(tmp_path):
    from inspatio_cli.errors import UsageError

    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "x.mp4", 25, crf=99)
    with pytest.raises(VideoError, match="no frames"):
        with VideoWriter(tmp_path / "x.mp4", 25):
            pass
    assert list(tmp_path.iterdir()) == []


_SLOW_WRITER = """
import sys, time, numpy as np
from inspatio_cli.cli import install_signal_handlers
from inspatio_cli.video import VideoWriter
install_signal_handlers()
with VideoWriter(sys.argv[1], 25) as w:
    for i in range(100000):
        w.write(np.random.randint(0, 255, (1, 64, 64, 3), np.uint8))
        time.sleep(0.002)
"""


def _wait_for_temp(folder: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(".inspatio-tmp-" in p.name and p.stat().st_size > 0 for p in folder.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "writer never produced data"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_writer_never_leaves_the_final_name(tmp_path, sig):
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(out)], stderr=subprocess.DEVNULL)
    _wait_for_temp(tmp_path, proc)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    if sig == signal.SIGKILL:
        assert len(leftovers) <= 1 and all(".inspatio-tmp-" in n for n in leftovers)
        with VideoWriter(out, 25) as writer:  # the next run removes the dead process's temporary file
            writer.write(pattern(1, 16, 16))
        assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    else:
        assert leftovers == [], leftovers


class TestFit:
    def test_stretch_matches_bilinear_antialias(self):
        frames = torch.from_numpy(pattern(2, 90, 160))
        fit = Fit.make((90, 160), (48, 80), "stretch")
        ref = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float() / 255, size=(48, 80),
                                              mode="bilinear", align_corners=False, antialias=True)
        assert torch.equal(fit.frames(frames), (ref - 0.5) / 0.5)

    def test_crop_keeps_the_centre_and_aspect(self):
        fit = Fit.make((100, 300), (50, 100), "crop")
        assert fit.crop == (0, 50, 100, 200)
        centre = fit.pixel_transform() @ torch.tensor([150.0, 50.0, 1.0], dtype=torch.float64)
        assert torch.allclose(centre[:2], torch.tensor([50.0, 25.0], dtype=torch.float64))

    def test_pad_letterboxes_with_black(self):
        frames = torch.full((1, 50, 200, 3), 255, dtype=torch.uint8)
        fit = Fit.make((50, 200), (100, 200), "pad")
        out = fit.frames(frames)
        assert fit.content_hw == (50, 200) and fit.offset == (25, 0)
        assert torch.all(out[:, :, :25] == -1) and torch.all(out[:, :, 75:] == -1)
        assert torch.allclose(out[:, :, 30:70], torch.ones(1))
        depth = fit.maps(torch.full((1, 50, 200), 3.0), fill=0.0)
        assert depth.shape == (1, 100, 200) and depth[0, 50, 10] == 3.0 and depth[0, 5, 10] == 0.0

    def test_pixel_transform_scales_intrinsics_like_the_official_code(self):
        fit = Fit.make((238, 504), (480, 832), "stretch")
        expected = torch.diag(torch.tensor([832 / 504, 480 / 238, 1.0], dtype=torch.float64))
        assert torch.allclose(fit.pixel_transform(), expected)

    def test_bad_mode_and_mismatched_frames(self):
        from inspatio_cli.errors import UsageError

        with pytest.raises(UsageError):
            Fit.make((10, 10), (8, 8), "zoom")
        with pytest.raises(ValueError):
            Fit.make((10, 10), (8, 8)).frames(torch.zeros(1, 12, 10, 3, dtype=torch.uint8))


@pytest.mark.skipif(not MEDIA.is_dir(), reason="../shared/media not present")
def test_real_videos_probe():
    pour = probe(MEDIA / "coffee_pour_1920x900_25fps_audio.mp4")
    assert (pour.width, pour.height, pour.fps, pour.frame_count, pour.has_audio) == (1920, 900, 25.0, 247, True)
    martini = probe(MEDIA / "coffee_martini_1352x760_30fps.mp4")
    assert (martini.width, martini.height, martini.fps, martini.frame_count, martini.has_audio) == \
        (1352, 760, 30.0, 300, False)
    assert read_video(MEDIA / "coffee_martini_1352x760_30fps.mp4", max_frames=3).frames.shape == (3, 760, 1352, 3)


def test_audio_only_file_is_rejected(tmp_path):
    with pytest.raises(VideoError, match="no video stream"):
        probe(make_audio_only(tmp_path / "tone.mp4"))
