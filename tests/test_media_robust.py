"""Real-world media that used to break (issue 23), one test per class: audio the output cannot take as is,
a picture size that changes mid-stream, inputs without (or with wrapped) timestamps and codec names, absurd
frame counts and canvas sizes, and a symbolic link loop as the source. Every clip is generated, tiny."""

from __future__ import annotations

import json
import logging
import os

import av
import numpy as np
import pytest

from clirun import run
from inspatio_cli.choices import MAX_CANVAS_SIDE, MAX_OUTPUT_FRAMES
from inspatio_cli.errors import UsageError
from inspatio_cli.video import VideoWriter, audio, iter_frames, probe
from media import make_clip, make_raw_stream, pattern, strip_first_pts
from test_images import photo
from test_preview_pipeline import ORBIT, H, W, planar_depth

FRAMES = 6


def _audio_of(path) -> tuple[str, int, int, float]:
    """The first audio stream of ``path``: codec, channels, sample rate and decoded seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        samples = sum(frame.samples for frame in container.decode(stream))
        return ctx.codec.canonical_name, ctx.channels, ctx.sample_rate, samples / ctx.sample_rate


def test_audio_the_output_cannot_take_is_reencoded_or_left_out(tmp_path, monkeypatch, capsys):
    """PCM in Matroska/MOV, unpositioned 6-channel PCM and mono 8 kHz PCM become AAC with their channels and
    rate; audio nothing can carry is left out with a warning while the video is written; a preview of a
    PCM Matroska clip keeps its audio."""
    clip = pattern(FRAMES, H, W)
    sources = {"pcm.mkv": ("pcm_s16le", 48000, "stereo"), "pcm.mov": ("pcm_s16le", 48000, "stereo"),
               "six.mkv": ("pcm_s16le", 48000, "6 channels"), "mono8k.mkv": ("pcm_s16le", 8000, "mono"),
               "odd-rate.mkv": ("pcm_s16le", 44056, "stereo")}
    warnings: list[str] = []
    for name, coded in sources.items():
        rate = 44100 if name == "odd-rate.mkv" else coded[1]  # no AAC rate: the nearest one
        source = make_clip(tmp_path / name, clip, 25, audio_seconds=0.5, audio=coded)
        assert probe(source).audio_codec == "pcm_s16le"
        out = tmp_path / f"{name}.mp4"
        with VideoWriter(out, 25, audio_from=source, warn=warnings.append) as writer:
            writer.write(clip)
        assert _audio_of(out)[:3] == ("aac", av.AudioLayout(coded[2]).nb_channels, rate), name
        seconds = _audio_of(out)[3]
        assert FRAMES / 25 - 0.01 < seconds < FRAMES / 25 + 2048 / rate, name  # trimmed to whole audio frames
        assert probe(out).frame_count == FRAMES
    assert warnings == []
    monkeypatch.setattr(audio, "_header_takes", lambda fmt, add: False)
    with VideoWriter(tmp_path / "none.mp4", 25, audio_from=tmp_path / "pcm.mkv", warn=warnings.append) as writer:
        writer.write(clip)
    facts = probe(tmp_path / "none.mp4")
    assert facts.frame_count == FRAMES and not facts.has_audio
    assert len(warnings) == 1 and "the output has no audio" in warnings[0]
    monkeypatch.undo()
    planar_depth(FRAMES).save(tmp_path / "pcm.depth.safetensors")
    (tmp_path / "orbit.txt").write_text(ORBIT)
    code, _, err = run(capsys, "preview", tmp_path / "pcm.mkv", "-t", tmp_path / "orbit.txt", "-o",
                       tmp_path / "p.mp4", "--layout", "warped")
    assert code == 0 and "audio kept" in err and "the audio" not in err, err
    assert _audio_of(tmp_path / "p.mp4")[:3] == ("aac", 2, 48000)


def test_a_picture_size_change_mid_stream_is_decoded_at_the_first_size(tmp_path, caplog):
    """Two encodes at two sizes joined in a raw H.264 stream and in an MPEG-TS file (whose timestamps start
    again in the second part): every frame decodes at the first size, in order, one frame interval apart."""
    raw = make_raw_stream(tmp_path / "two-sizes.h264", pattern(FRAMES, H, W))
    make_raw_stream(raw, pattern(FRAMES, 32, 64, seed=1))
    parts = [make_clip(tmp_path / f"{i}.ts", pattern(FRAMES, *hw, seed=i), 25) for i, hw in enumerate([(H, W), (32, 64)])]
    joined = tmp_path / "two-sizes.ts"
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    second = [image for _, image in iter_frames(parts[1])]
    scaled = np.stack([av.VideoFrame.from_ndarray(image, format="rgb24").reformat(width=W, height=H)
                       .to_ndarray(format="rgb24") for image in second])
    for path in (raw, joined):
        facts = probe(path)
        assert (facts.height, facts.width, facts.frame_count) == (H, W, 2 * FRAMES), path.name
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="inspatio_cli"):
            decoded = list(iter_frames(path))
        assert [t for t, _ in decoded] == pytest.approx([i / 25 for i in range(2 * FRAMES)], abs=1e-6), path.name
        frames = np.stack([image for _, image in decoded])
        assert frames.shape == (2 * FRAMES, H, W, 3)
        assert [r.getMessage() for r in caplog.records] == [
            f"{path}: the picture size changes from {W}x{H} to 64x32 at frame {FRAMES}; such frames are scaled "
            f"to {W}x{H}"]
        assert np.abs(frames[FRAMES:].astype(int) - scaled).mean() < 3, path.name


def test_streams_without_or_with_wrapped_timestamps_decode_every_frame(tmp_path, capsys):
    """Raw H.264/HEVC elementary streams (no timestamps: one frame interval apart at the declared 25 fps),
    an MPEG-TS whose 33-bit PTS wraps mid-stream and one whose first packets have no PTS all decode every
    frame at regular times; ``info`` names codecs by the codec, not the decoder (AV1: ``av1``)."""
    clip = pattern(FRAMES, H, W)
    wrap_at = 2 ** 33 - 3 * 3600  # 90 kHz ticks: three frames before the wrap
    files = {
        "raw.h264": make_raw_stream(tmp_path / "raw.h264", clip),
        "raw.265": make_raw_stream(tmp_path / "raw.265", clip, codec="libx265"),
        "wrap.ts": make_clip(tmp_path / "wrap.ts", clip, 25, codec_options={"bf": "0"},
                             container_options={"output_ts_offset": str(wrap_at / 90000)}),
        "first-no-pts.ts": strip_first_pts(make_clip(tmp_path / "first-no-pts.ts", clip, 25,
                                                     codec_options={"bf": "0"}), 2),
    }
    with av.open(str(files["wrap.ts"])) as container:  # FFmpeg unwraps: the first timestamps are before 0
        assert min(p.pts for p in container.demux(video=0) if p.pts is not None) < 0
    with av.open(str(files["first-no-pts.ts"])) as container:
        assert [p.pts is None for p in container.demux(video=0) if p.size][:3] == [True, True, False]
    for name, path in files.items():
        facts = probe(path)
        assert (facts.frame_count, facts.fps, facts.duration) == (FRAMES, 25.0, pytest.approx(FRAMES / 25)), name
        times = [t for t, _ in iter_frames(path)]
        assert times == pytest.approx([i / 25 for i in range(FRAMES)], abs=1e-6), name
    code, out, _ = run(capsys, "info", "--json", files["raw.265"])
    assert code == 0 and json.loads(out)["codec"] == "hevc" and json.loads(out)["timestamps"] is False
    assert probe(files["wrap.ts"]).timestamps and probe(files["first-no-pts.ts"]).timestamps
    if "libsvtav1" not in av.codecs_available:
        return
    av1 = make_clip(tmp_path / "av1.mkv", clip[:2], 25, codec="libsvtav1")
    with av.open(str(av1)) as container:
        decoder = container.streams.video[0].codec_context.name
    code, out, _ = run(capsys, "info", "--json", av1)
    assert code == 0 and json.loads(out)["codec"] == "av1" and decoder != "av1"


def test_absurd_frame_counts_and_canvas_sizes_are_refused_up_front(tmp_path, capsys):
    files = photo(tmp_path)
    code, _, err = run(capsys, "preview", files["image"], "-t", files["traj"], "-o", tmp_path / "p.mp4", "--fps", 1e-9)
    assert code == 2 and err.startswith("error: --fps must be within [0.001, 240]") and err.count("\n") == 1
    for frames in (10 ** 9, MAX_OUTPUT_FRAMES + 1):
        code, _, err = run(capsys, "preview", files["image"], "-t", files["traj"], "-o", tmp_path / "p.mp4",
                           "--frames", frames)
        assert code == 2 and err == f"error: --frames {frames}: the output must have 1..{MAX_OUTPUT_FRAMES} frames\n"
    side = 100000
    code, _, err = run(capsys, "depth", files["image"], "--size", f"{side}x{side}", "-o", tmp_path / "d.safetensors")
    assert code == 2 and err.startswith(f"error: --size {side}x{side}: height and width must be within "
                                        f"1..{MAX_CANVAS_SIDE} pixels") and err.count("\n") == 1
    from inspatio_cli.choices import check_size

    with pytest.raises(UsageError, match="within 1..4096"):
        check_size((MAX_CANVAS_SIDE + 16, 16))
    assert check_size((MAX_CANVAS_SIDE, 16)) == (MAX_CANVAS_SIDE, 16)
    assert not list(tmp_path.glob("p.mp4")) and not list(tmp_path.glob("d.*"))


def test_a_symbolic_link_loop_as_the_source_is_one_line(tmp_path, capsys):
    for name in ("loop.mp4", "loop.png"):
        first, second = tmp_path / name, tmp_path / f"other-{name}"
        os.symlink(second, first)
        os.symlink(first, second)
        code, out, err = run(capsys, "info", first)
        assert (code, out) == (3, "") and err == f"error: {first}: symbolic link loop (too many levels of symbolic links)\n"



SWEEP_AUDIO = [("pcm_s16le", 48000, "stereo", "mkv"), ("pcm_s16le", 48000, "stereo", "mov"),
               ("pcm_s24le", 44100, "stereo", "mkv"), ("pcm_f32le", 96000, "stereo", "mov"),
               ("pcm_s16le", 48000, "6 channels", "mkv"), ("pcm_s16le", 48000, "5 channels", "mkv"),
               ("pcm_s16le", 32000, "3 channels", "mkv"), ("pcm_s16le", 8000, "mono", "mkv"),
               ("pcm_s16le", 192000, "stereo", "mkv"), ("pcm_s16le", 44056, "stereo", "mkv"),
               ("pcm_u8", 22050, "mono", "mkv"), ("pcm_alaw", 8000, "mono", "mov"), ("pcm_s16be", 48000, "stereo", "mov"),
               ("libmp3lame", 11025, "mono", "mkv"), ("libmp3lame", 8000, "mono", "mov"), ("mp2", 48000, "stereo", "ts"),
               ("aac", 48000, "stereo", "ts"), ("aac", 48000, "5.1", "mp4"), ("aac", 7350, "mono", "mkv"),
               ("ac3", 48000, "5.1", "mkv"), ("libopus", 48000, "5.1", "mkv")]


@pytest.mark.fuzz
def test_sweep_of_real_world_media_previews_every_frame_with_its_audio(tmp_path, capsys):
    """Every audio coding above, in three output containers, and the timestamp-less, wrapped, joined and
    partly untimed streams: ``preview`` ends well with every frame, and keeps audio wherever the source has it."""
    clip = pattern(FRAMES, H, W)
    sources = [make_clip(tmp_path / f"a{i}.{suffix}", clip, 25, audio_seconds=0.5, audio=(codec, rate, layout))
               for i, (codec, rate, layout, suffix) in enumerate(SWEEP_AUDIO)]
    sources += [make_raw_stream(tmp_path / f"raw{suffix}", clip, codec) for suffix, codec in
                ((".h264", "libx264"), (".264", "libx264"), (".hevc", "libx265"), (".265", "libx265"))]
    sources += [make_clip(tmp_path / "wrap-b.ts", clip, 25, container_options={"output_ts_offset": str(2 ** 33 / 90000 - 0.1)}),
                strip_first_pts(make_clip(tmp_path / "no-pts-b.ts", clip, 25), 3),
                make_clip(tmp_path / "mpeg2.ts", clip, 25, codec="mpeg2video")]
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(make_clip(tmp_path / f"part{i}.ts", clip[:3], 25, audio_seconds=0.12).read_bytes()
                                for i in range(2)))
    sources.append(joined)
    (tmp_path / "orbit.txt").write_text(ORBIT)
    for source in sources:
        planar_depth(FRAMES).save(source.with_name(f"{source.stem}.depth.safetensors"))
        for suffix in (".mp4", ".mov", ".mkv"):
            out = tmp_path / f"out-{source.name}{suffix}"
            code, _, err = run(capsys, "preview", source, "-t", tmp_path / "orbit.txt", "-o", out, "--layout", "warped")
            assert code == 0, (source.name, err)
            facts = probe(out)
            assert facts.frame_count == FRAMES and facts.has_audio == probe(source).has_audio, (source.name, suffix)
