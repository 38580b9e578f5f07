"""Hostile cases of the video and path classes: damaged, odd and misnamed media; malformed trajectory
files of every format and absurd time options. Each builder draws its variation from the case's generator."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import numpy as np

from hostile_kit import H, NASTY_NUMBERS, W, Context, Run
from media import make_clip, pattern
from test_preview_pipeline import ORBIT


def _video_run(ctx: Context, what: str, video: str, frames: int = 12, depth: bool = True) -> Run:
    """Run info, preview or rerender on ``video`` (with a planar depth file of ``frames`` frames)."""
    kind = ctx.rng.choice(["info", "preview", "preview", "rerender"])
    extra: list[str] = []
    if kind != "info" and depth:
        extra += ["--depth", ctx.depth("given.depth.safetensors", max(frames, 1))]
    if kind != "info" and ctx.rng.random() < 0.3:
        extra.append("--skip-bad-frames")
    if ctx.rng.random() < 0.2:
        extra.append("--json")
    outputs = () if kind == "info" else ("out.mp4",)
    return Run(f"{kind}: {what}", ctx.command(kind, video, extra=tuple(extra)), outputs)


# ---------------------------------------------------------------------------------------------- video

def video_truncated(ctx: Context) -> Run:
    data = ctx.fx.clip.read_bytes()
    cut = ctx.rng.uniform(0.01, 0.99)
    name = ctx.write(ctx.rng.choice(["v.mp4", "v.mov", "v.MP4"]), data[:int(len(data) * cut)])
    return _video_run(ctx, f"mp4 cut at {cut:.0%}", name)


def video_flipped(ctx: Context) -> Run:
    data = bytearray(ctx.fx.clip.read_bytes())
    spots = ctx.rng.randint(1, 40)
    for _ in range(spots):
        at = ctx.rng.randrange(len(data))
        length = ctx.rng.choice([1, 4, 64, 512])
        data[at:at + length] = ctx.noise(length) if ctx.rng.random() < 0.7 else bytes(length)
    return _video_run(ctx, f"mp4 with {spots} damaged spots", ctx.write("v.mp4", bytes(data)))


def video_garbage(ctx: Context) -> Run:
    name = "v" + ctx.rng.choice([".mp4", ".mkv", ".mov", ".png", ".jpg", ".webm", ".avi", ""])
    size = ctx.rng.choice([0, 1, 7, 100, 4096, 60000])
    head = ctx.rng.choice([b"", b"\x00\x00\x00\x18ftypmp42", b"\x1aE\xdf\xa3", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"])
    return _video_run(ctx, f"{size} random bytes as {name} (magic {head[:6]!r})", ctx.write(name, head + ctx.noise(size)))


CONTAINERS = [("mkv", "libx264", "yuv420p"), ("mov", "mpeg4", "yuv420p"), ("webm", "libvpx-vp9", "yuv420p"),
              ("avi", "mjpeg", "yuvj420p"), ("mkv", "ffv1", "yuv444p"), ("mp4", "libx265", "yuv420p"),
              ("mkv", "libsvtav1", "yuv420p"), ("mov", "png", "rgb24"), ("gif", "gif", "pal8"),
              ("mp4", "libx264", "yuv444p"), ("nut", "ffv1", "gray")]


def video_container(ctx: Context) -> Run:
    suffix, codec, pix_fmt = ctx.rng.choice(CONTAINERS)
    frames = ctx.rng.choice([1, 2, 5, 12, 13])
    height, width = ctx.rng.choice([(48, 80), (64, 64), (16, 16), (32, 192), (192, 32), (90, 160)])
    options = {"x265-params": "log-level=error"} if codec == "libx265" else {"preset": "12"} if codec == "libsvtav1" else None
    fps = ctx.rng.choice([1, 12, 24, 29.97, 60, 1000])
    path = ctx.dir / f"v.{suffix}"
    try:
        make_clip(path, pattern(frames, height, width), fps=fps, codec=codec, pix_fmt=pix_fmt, codec_options=options)
    except Exception as exc:  # noqa: BLE001 - an encoder this PyAV lacks: the file stays whatever was written
        path.write_bytes(f"unwritable: {exc}".encode())
    return _video_run(ctx, f"{codec} {pix_fmt} {width}x{height} {frames} frames at {fps} fps in .{suffix}",
                      path.name, frames)


def video_image(ctx: Context) -> Run:
    from PIL import Image

    height, width = ctx.rng.choice([(1, 1), (2, 2), (3, 5), (48, 80), (7, 400), (400, 7)])
    mode = ctx.rng.choice(["RGB", "RGBA", "L", "P", "I;16", "CMYK", "1", "F"])
    suffix = ctx.rng.choice([".png", ".jpg", ".webp", ".tiff", ".bmp"])
    image = Image.fromarray(np.asarray(pattern(1, height, width)[0]))
    name = f"pic{suffix}"
    try:
        image.convert(mode).save(ctx.dir / name)
    except (OSError, ValueError):
        image.save(ctx.dir / name)
    frames = ctx.rng.choice(["", "1", "13", "0", "-3", "45"])
    kind = ctx.rng.choice(["info", "preview", "rerender"])
    extra = ("--frames", frames) if frames and kind != "info" else ()
    extra += ("--depth", ctx.depth("given.depth.safetensors", 1)) if kind != "info" else ()
    return Run(f"{kind}: {mode} {width}x{height} image {suffix} --frames {frames or '-'}",
               ctx.command(kind, name, extra=extra), () if kind == "info" else ("out.mp4",))


def video_corpus(ctx: Context) -> Run:
    item = ctx.rng.choice(ctx.fx.corpus)
    return _video_run(ctx, f"corpus {item.name} ({item.what})", str(item.path), depth=ctx.rng.random() < 0.7)


def video_odd_path(ctx: Context) -> Run:
    choice = ctx.rng.randrange(6)
    if choice == 0:
        (ctx.dir / "v.mp4").mkdir()
        name, what = "v.mp4", "a folder named v.mp4"
    elif choice == 1:
        name, what = "missing.mp4", "a file that does not exist"
    elif choice == 2:
        os.symlink("nowhere.mp4", ctx.dir / "v.mp4")
        name, what = "v.mp4", "a dangling link"
    elif choice == 3:
        name, what = ctx.clip("-v.mp4"), "a name that starts with a dash"
    elif choice == 4:
        name, what = ctx.clip("v\u00e9 \u6f22 \U0001f600 $(x).mp4"), "a name with spaces, unicode, emoji and $()"
    else:
        name, what = "/dev/null", "/dev/null"
    return _video_run(ctx, what, name)


REAL_WORLD = ["annex-b h264", "annex-b hevc", "mpeg-ts", "mpeg-ts pts wrap", "size change", "pcm audio mkv",
              "pcm audio mov", "6-channel aac", "flac audio mkv", "av1 mkv"]


def video_real_world(ctx: Context) -> Run:
    """Media a camera, a screen grabber or a streaming tool writes: raw elementary streams, transport streams
    (with the 33-bit timestamp wrapping), a size change mid-stream, audio the output container cannot hold."""
    kind = ctx.rng.choice(REAL_WORLD)
    frames = pattern(12, H, W)
    if kind.startswith("annex-b"):
        hevc = kind.endswith("hevc")
        name = "v.hevc" if hevc else "v.h264"
        make_clip(ctx.dir / name, frames, 12, codec="libx265" if hevc else "libx264",
                  codec_options={"x265-params": "log-level=error"} if hevc else None)
    elif kind.startswith("mpeg-ts"):
        name = "v.ts"
        start = 2 ** 33 - 5 * 7500 if kind.endswith("wrap") else 0
        make_clip(ctx.dir / name, frames, 12, pts=[start + i * 7500 for i in range(12)], time_base=Fraction(1, 90000))
    elif kind == "size change":
        name = "v.h264"
        make_clip(ctx.dir / "a.h264", frames[:6], 12)
        make_clip(ctx.dir / "b.h264", pattern(6, 64, 112), 12)
        (ctx.dir / name).write_bytes((ctx.dir / "a.h264").read_bytes() + (ctx.dir / "b.h264").read_bytes())
    elif kind == "av1 mkv":
        name = "v.mkv"
        make_clip(ctx.dir / name, frames, 12, codec="libsvtav1", codec_options={"preset": "12"})
    else:
        codec, layout = {"pcm audio mkv": ("pcm_s16le", "stereo"), "pcm audio mov": ("pcm_s16le", "mono"),
                         "6-channel aac": ("aac", "5.1"), "flac audio mkv": ("flac", "stereo")}[kind]
        name = "v.mov" if kind.endswith("mov") else "v.mp4" if codec == "aac" else "v.mkv"
        _clip_with_audio(ctx.dir / name, frames, codec, layout)
    return _video_run(ctx, f"{kind} ({name})", name)


def _clip_with_audio(path, frames: np.ndarray, codec: str, layout: str) -> None:
    """12 fps H.264 with one second of silence-and-noise in ``codec`` (``layout`` channels) alongside."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.height, video.width, video.pix_fmt = H, W, "yuv420p"
        audio = out.add_stream(codec, rate=48000)
        audio.layout = layout
        fmt = audio.codec_context.codec.audio_formats[0].name
        channels = audio.codec_context.layout.nb_channels
        rng = np.random.default_rng(0)
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for start in range(0, 48000, 1024):
            planar = fmt.endswith("p")
            dtype = {"s16": np.int16, "s32": np.int32, "flt": np.float32}[fmt.rstrip("p")]
            samples = (rng.random((channels, 1024)) * 100).astype(dtype)
            frame = av.AudioFrame.from_ndarray(samples if planar else samples.T.reshape(1, -1), format=fmt,
                                               layout=layout)
            frame.sample_rate, frame.pts = 48000, start
            for packet in audio.encode(frame):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)


# ---------------------------------------------------------------------------------------------- path

def _path_run(ctx: Context, what: str, trajectory: str) -> Run:
    video = ctx.clip()
    kind = ctx.rng.choice(["preview", "preview", "check", "convert", "show", "rerender"])
    if kind == "check":
        return Run(f"trajectory check: {what}", ["trajectory", "check", trajectory, "--depth", "clip.depth.safetensors"])
    if kind == "convert":
        to = ctx.rng.choice(["tcw", "c2w", "npy", "json", "nerfstudio"])
        out = "out." + {"npy": "npy", "json": "json", "nerfstudio": "json"}.get(to, "txt")
        return Run(f"trajectory convert --to {to}: {what}",
                   ["trajectory", "convert", trajectory, "-o", out, "--to", to, "--depth", "clip.depth.safetensors"],
                   (out,))
    if kind == "show":
        return Run(f"trajectory show: {what}", ["trajectory", "show", trajectory, "-o", "path.png"], ("path.png",))
    extra = tuple(ctx.rng.choice([[], [], ["--resample"], ["--extend", "loop", "--min-frames", "30"],
                                  ["--format", ctx.rng.choice(["orbit", "matrices", "tcw", "npy", "keyframes",
                                                               "re10k", "nerfstudio"])],
                                  ["--scale", ctx.rng.choice(["0", "-1", "nan", "1e30"])]]))
    return Run(f"{kind} {' '.join(extra)}: {what}".replace("  ", " "), ctx.command(kind, video, trajectory,
                                                                                       extra=extra), ("out.mp4",))


def path_orbit(ctx: Context) -> Run:
    rows = [["0", "-4", "-8"], ["0", "6", "12"], ["1.5", "1.5", "1.5"]]
    what = []
    for _ in range(ctx.rng.randint(1, 4)):
        move = ctx.rng.randrange(5)
        if move == 0 and rows and rows[0]:
            r = ctx.rng.randrange(len(rows))
            rows[r] = rows[r] or ["0"]
            c = ctx.rng.randrange(len(rows[r]))
            rows[r][c] = ctx.rng.choice(NASTY_NUMBERS)
            what.append(f"token {rows[r][c][:8]!r}")
        elif move == 1 and rows:
            rows.pop(ctx.rng.randrange(len(rows)))
            what.append("a line dropped")
        elif move == 2:
            rows.append([str(ctx.rng.uniform(-1e6, 1e6)) for _ in range(ctx.rng.randint(0, 5))])
            what.append("a line added")
        elif move == 3 and rows:
            rows[ctx.rng.randrange(len(rows))] = [str(ctx.rng.uniform(-720, 720)) for _ in range(ctx.rng.randint(1, 400))]
            what.append("a long line")
        else:
            what.append("huge keys")
            rows = [[str(ctx.rng.choice([1e6, 1e15, 1e300])) for _ in range(3)] for _ in range(3)]
    return _path_run(ctx, "orbit file, " + ", ".join(what), ctx.write("path.txt", "\n".join(" ".join(r) for r in rows)))


def path_matrices(ctx: Context) -> Run:
    count = ctx.rng.choice([0, 1, 11, 12, 13, 1000])
    width = ctx.rng.choice([12, 16, 15, 17])
    poses = np.tile(np.eye(4)[:3 if width == 12 else 4].reshape(-1), (count, 1)).astype(object)
    if width not in (12, 16):
        poses = np.tile(np.arange(width, dtype=float), (count, 1)).astype(object)
    bad = ctx.rng.choice(["none", "nan", "singular", "scaled", "text"])
    if count and bad != "none":
        row = ctx.rng.randrange(count)
        if bad == "nan":
            poses[row, ctx.rng.randrange(width)] = "nan"
        elif bad == "singular":
            poses[row, :] = 0
        elif bad == "scaled":
            poses[row, :] = poses[row, :] * 1e12
        else:
            poses[row, 0] = "x"
    text = "\n".join(" ".join(str(v) for v in row) for row in poses)
    return _path_run(ctx, f"matrices file, {count} poses of {width} numbers, {bad}", ctx.write("poses.txt", text))


def path_npy(ctx: Context) -> Run:
    shape = ctx.rng.choice([(12, 4, 4), (12, 3, 4), (4, 4), (0, 4, 4), (12, 16), (2, 12, 4, 4)])
    dtype = ctx.rng.choice(["float64", "float16", "int8", "complex64", "object", "bool"])
    array = np.broadcast_to(np.eye(4)[:shape[-2], :shape[-1]] if len(shape) > 1 and shape[-1] == 4 else 0, shape)
    array = np.array(array, dtype=dtype)
    if ctx.rng.random() < 0.3 and array.size and array.dtype.kind == "f":
        array.flat[ctx.rng.randrange(array.size)] = np.nan
    name = ctx.rng.choice(["poses.npy", "poses.npz"])
    path = ctx.dir / name
    if name.endswith(".npz"):
        np.savez(path, **{ctx.rng.choice(["poses", "c2w", "arr_0", "x"]): array})
    else:
        np.save(path, array, allow_pickle=True)
    if ctx.rng.random() < 0.3:
        data = path.read_bytes()
        path.write_bytes(data[:ctx.rng.randrange(len(data))])
        return _path_run(ctx, f"{name} {dtype}{shape} truncated", name)
    return _path_run(ctx, f"{name} {dtype}{shape}", name)


def path_keyframes(ctx: Context) -> Run:
    doc = {"format": "inspatio-keyframes", "units": "normalized", "interpolation": "cubic",
           "keyframes": [{"at": 0, "position": [0, 0, 0], "euler_deg": [0, 0, 0]},
                         {"at": 1, "position": [0, 0, 0.2], "euler_deg": [-10, 0, 0]}]}
    node = ctx.rng.choice(["at", "position", "euler_deg", "units", "interpolation", "keyframes", "quaternion",
                           "look_at", "fov", "deep", "truncated", "utf16", "duplicate"])
    value = ctx.rng.choice([None, "nan", float("nan"), 1e309, -1, 10 ** 30, [], {}, "x", [1, 2], True])
    key = doc["keyframes"][ctx.rng.randrange(2)]
    if node in ("units", "interpolation"):
        doc[node] = value
    elif node == "keyframes":
        doc["keyframes"] = value if ctx.rng.random() < 0.5 else [key] * 5000
    elif node == "deep":
        deep: object = 0
        for _ in range(ctx.rng.choice([100, 5000, 100000])):
            deep = [deep]
        key["position"] = deep
    elif node == "duplicate":
        doc["keyframes"] = [dict(key) for _ in range(3)]
    elif node not in ("truncated", "utf16"):
        key[node] = value
    try:
        text = json.dumps(doc)
    except (ValueError, RecursionError):
        text = "[" * 100000
    data = text.encode("utf-16") if node == "utf16" else text.encode()
    if node == "truncated":
        data = data[:ctx.rng.randrange(len(data))]
    return _path_run(ctx, f"keyframes JSON, {node} = {str(value)[:20]}", ctx.write("path.json", data))


def path_other_formats(ctx: Context) -> Run:
    if ctx.rng.random() < 0.5:
        lines = ["https://youtube.example/abc"] + [
            " ".join([str(i * 1000), "0.5", "0.9", "0.5", "0.5", "0", "0", *map(str, np.eye(4)[:3].reshape(-1))])
            for i in range(12)]
        damage = ctx.rng.choice(["none", "nan", "short", "empty", "no url", "zero focal"])
        if damage == "nan":
            lines[3] = lines[3].replace("0.9", "nan")
        elif damage == "short":
            lines[2] = lines[2][:20]
        elif damage == "empty":
            lines = lines[:1]
        elif damage == "no url":
            lines = lines[1:]
        elif damage == "zero focal":
            lines[1] = lines[1].replace("0.5 0.9", "0 0")
        return _path_run(ctx, f"re10k file, {damage}", ctx.write("cams.txt", "\n".join(lines)))
    frames = [{"camera_to_world": np.eye(4).reshape(-1).tolist(), "fov": 50, "aspect": 1.6} for _ in range(12)]
    doc = {"camera_type": "perspective", "render_height": 48, "render_width": 80, "camera_path": frames, "fps": 12}
    damage = ctx.rng.choice(["none", "fov 0", "fov nan", "matrix 15", "no path", "fps 0", "huge"])
    if damage == "fov 0":
        frames[0]["fov"] = 0
    elif damage == "fov nan":
        frames[0]["fov"] = float("nan")
    elif damage == "matrix 15":
        frames[1]["camera_to_world"] = frames[1]["camera_to_world"][:15]
    elif damage == "no path":
        del doc["camera_path"]
    elif damage == "fps 0":
        doc["fps"] = 0
    elif damage == "huge":
        doc["camera_path"] = frames * 20000
    return _path_run(ctx, f"nerfstudio camera_path, {damage}", ctx.write("camera_path.json", json.dumps(doc)))


def path_time_options(ctx: Context) -> Run:
    option = ctx.rng.choice([("--freeze", ["0:0", "-1:3", "12:1", "3:1000000", "x:y", "3", "mid:24", "end:2"]),
                             ("--slow", ["0:11:2", "5:3:2", "0:11:0", "0:11:nan", "0:11:1e9", "0:99:2"]),
                             ("--reverse", ["0:11", "11:0", "0:0", "-5:5", "0:1e3"]),
                             ("--min-frames", ["0", "-1", "1000000000", "x"]),
                             ("--extend", ["loop", "pingpong", "hold", "official", "sideways"])])
    value = ctx.rng.choice(option[1])
    extra = [option[0], value] + (["--extend", "loop"] if option[0] == "--min-frames" else [])
    video = ctx.clip()
    kind = ctx.rng.choice(["preview", "rerender"])
    return Run(f"{kind} {' '.join(extra)}", ctx.command(kind, video, extra=tuple(extra)), ("out.mp4",))


def path_binary(ctx: Context) -> Run:
    name = ctx.rng.choice(["path.txt", "path.json", "path.npy", "path", "orbit_left"])
    data = ctx.noise(ctx.rng.choice([0, 3, 300, 30000]))
    if ctx.rng.random() < 0.3:
        data = b"\xef\xbb\xbf" + ORBIT.replace("\n", ctx.rng.choice(["\r", "\r\n", "\x00", "\u2028"])).encode()
    return _path_run(ctx, f"{len(data)} odd bytes as {name}", ctx.write(name, data))


BUILDERS = {
    "video": [video_truncated, video_flipped, video_garbage, video_container, video_image, video_corpus,
              video_odd_path, video_real_world, video_real_world],
    "path": [path_orbit, path_matrices, path_npy, path_keyframes, path_other_formats, path_time_options, path_binary],
}
