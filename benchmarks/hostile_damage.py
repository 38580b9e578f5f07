"""Hostile cases of the weights, depth and signal classes: damaged weight files, damaged depth files, and
SIGINT/SIGTERM at random moments of a preview, a rerender or a batch."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal

import numpy as np

from hostile_kit import Context, Run


# ---------------------------------------------------------------------------------------------- weights

WEIGHT_NAMES = ["generator", "tae", "text-encoder", "tokenizer"]


def weights_damaged(ctx: Context) -> Run:
    import torch
    from conftest import WEIGHT_FILES
    from safetensors.torch import load, save_file

    shutil.copytree(ctx.fx.weights, ctx.dir / "w")
    which = ctx.rng.choice(WEIGHT_NAMES)
    path = ctx.dir / "w" / WEIGHT_FILES[which]
    damage = ctx.rng.choice(["missing", "truncated", "noise", "empty", "folder", "drop key", "extra key", "shape",
                             "dtype", "code", "not a dict", "huge header", "dangling link", "renamed key",
                             "unreadable", "unreadable folder"])
    data = path.read_bytes()
    if damage in ("missing", "folder", "dangling link"):
        path.unlink()
        if damage == "folder":
            path.mkdir()
        elif damage == "dangling link":
            os.symlink("gone.bin", path)
    elif damage in ("unreadable", "unreadable folder"):
        os.chmod(path if damage == "unreadable" else path.parent, 0)
    elif damage == "truncated":
        path.write_bytes(data[:ctx.rng.randrange(len(data))])
    elif damage == "noise":
        path.write_bytes(ctx.noise(ctx.rng.choice([10, 5000])))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "huge header":
        path.write_bytes((2 ** 62).to_bytes(8, "little") + data[8:])
    elif damage == "code":
        path.write_bytes(_pickled_code())
    elif which == "tokenizer":
        path.write_text(json.dumps({"model": {"type": "Unigram", "vocab": damage}}))
    else:
        tensors = load(data) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
        key = sorted(tensors)[ctx.rng.randrange(len(tensors))]
        if damage == "drop key":
            del tensors[key]
        elif damage == "renamed key":
            tensors[key + ".x"] = tensors.pop(key)
        elif damage == "extra key":
            tensors["extra.weight"] = torch.zeros(3)
        elif damage == "shape":
            tensors[key] = torch.zeros(tuple(s + 1 for s in tensors[key].shape) or (2,))
        elif damage == "dtype":
            tensors[key] = tensors[key].to(ctx.rng.choice([torch.int8, torch.float64, torch.bool]))
        elif damage == "not a dict":
            tensors = list(tensors.values())
        if path.suffix == ".safetensors" and isinstance(tensors, dict):
            save_file(tensors, path)
        else:
            torch.save(tensors, path)
    command = ctx.rng.choice(["rerender", "rerender", "verify"])
    locked = damage.startswith("unreadable")
    if command == "verify":
        return Run(f"models verify: {which} {damage}", ["models", "verify", "--weights-dir", "w"], permissions=locked)
    video = ctx.clip()
    args = ctx.command("rerender", video) + ["--weights-dir", "w"]
    return Run(f"rerender: {which} {damage}", args, ("out.mp4",), permissions=locked)


def _pickled_code() -> bytes:
    """A pickle whose loading would run ``os.system`` (refused by ``weights_only=True``)."""
    import pickle

    class Evil:
        def __reduce__(self):
            return os.system, ("touch pwned",)

    return pickle.dumps(Evil())


# ---------------------------------------------------------------------------------------------- depth

def depth_damaged(ctx: Context) -> Run:
    from safetensors.numpy import load, save_file

    ctx.clip()
    name = ctx.depth("d.depth.safetensors", 12)
    path = ctx.dir / name
    tensors = load(path.read_bytes())
    with open(path, "rb") as handle:
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    meta = header.get("__metadata__", {})
    damage = ctx.rng.choice(["frames", "size", "values", "K", "c2w", "missing", "dtype", "rank", "meta", "extra",
                             "mirrored", "not rigid"])
    what = damage
    if damage == "frames":
        n = ctx.rng.choice([1, 11, 13, 48])
        tensors = {k: np.resize(v, (n, *v.shape[1:])) for k, v in tensors.items()}
        what = f"{n} frames"
    elif damage == "size":
        h, w = ctx.rng.choice([(1, 1), (2, 3), (480, 832), (80, 48), (47, 79)])
        tensors["depth"] = np.full((12, h, w), 3.0, np.float32)
        what = f"{w}x{h} maps"
    elif damage in ("values", "K", "c2w"):
        key = {"values": "depth"}.get(damage, damage)
        value = ctx.rng.choice([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-30])
        array = tensors[key].copy()
        where = ctx.rng.choice(["one", "all"])
        if where == "one":
            array.flat[ctx.rng.randrange(array.size)] = value
        else:
            array[...] = value
        tensors[key] = array
        what = f"{key} {where} = {value}"
    elif damage in ("mirrored", "not rigid"):
        c2w = tensors["c2w"].copy()
        c2w[ctx.rng.randrange(12):, :3, ctx.rng.randrange(3)] *= -1 if damage == "mirrored" else 3.0
        tensors["c2w"] = c2w
    elif damage == "missing":
        del tensors[ctx.rng.choice(["depth", "K", "c2w"])]
    elif damage == "dtype":
        key = ctx.rng.choice(["depth", "K", "c2w"])
        tensors[key] = tensors[key].astype(ctx.rng.choice([np.int32, np.float64, np.uint8, np.bool_]))
        what = f"{key} as {tensors[key].dtype}"
    elif damage == "rank":
        key = ctx.rng.choice(["depth", "K", "c2w"])
        tensors[key] = tensors[key].reshape(-1)
        what = f"{key} flattened"
    elif damage == "meta":
        meta = ctx.rng.choice([{}, {"format": "other"}, {"format": "inspatio-depth", "format_version": "99"},
                               {"format": "inspatio-depth", "units": "x" * 10000}])
        what = f"metadata {str(meta)[:40]}"
    else:
        tensors["confidence"] = np.full((12, 1, 1), np.nan, np.float32)
        what = "a NaN confidence of the wrong size"
    save_file(tensors, path, metadata=meta or None)
    return _depth_run(ctx, what, name)


def depth_bytes(ctx: Context) -> Run:
    ctx.clip()
    valid = (ctx.dir / ctx.depth("v.depth.safetensors", 12)).read_bytes()
    damage = ctx.rng.choice(["truncated", "noise", "empty", "gz", "gz truncated", "gz noise", "flipped", "header len",
                             "folder", "not gz", "deep header", "header not json"])
    name = "d.depth.safetensors.gz" if damage.startswith("gz") or damage == "not gz" else "d.depth.safetensors"
    data = {"truncated": valid[:ctx.rng.randrange(len(valid))], "noise": ctx.noise(ctx.rng.choice([7, 900])),
            "empty": b"", "gz": gzip.compress(valid), "not gz": valid,
            "gz truncated": gzip.compress(valid)[:ctx.rng.randrange(10, 400)],
            "gz noise": gzip.compress(ctx.noise(3000)), "header len": (10 ** 12).to_bytes(8, "little") + valid[8:],
            "flipped": valid[:8] + bytes(b ^ 0x5A for b in valid[8:200]) + valid[200:],
            "deep header": _with_header(valid, "[" * 50000 + "]" * 50000),
            "header not json": _with_header(valid, "{\"depth\": " + "x" * 50)}.get(damage)
    if damage == "folder":
        (ctx.dir / name).mkdir()
    else:
        ctx.write(name, data)
    return _depth_run(ctx, damage, name)


def _with_header(valid: bytes, header: str) -> bytes:
    """``valid``'s tensor bytes behind another JSON header (safetensors: 8-byte length, header, data)."""
    size = int.from_bytes(valid[:8], "little")
    return len(header).to_bytes(8, "little") + header.encode() + valid[8 + size:]


def _depth_run(ctx: Context, what: str, depth: str) -> Run:
    kind = ctx.rng.choice(["preview", "preview", "check", "convert", "rerender"])
    if kind == "check":
        return Run(f"trajectory check --depth: {what}", ["trajectory", "check", str(ctx.fx.orbit), "--depth", depth])
    if kind == "convert":
        return Run(f"trajectory convert --depth: {what}",
                   ["trajectory", "convert", str(ctx.fx.orbit), "-o", "p.txt", "--to", "c2w", "--depth", depth],
                   ("p.txt",))
    return Run(f"{kind} --depth: {what}", ctx.command(kind, "clip.mp4", extra=("--depth", depth)), ("out.mp4",))


# ---------------------------------------------------------------------------------------------- signal

def signal_run(ctx: Context) -> Run:
    kind = ctx.rng.choice(["preview", "rerender", "batch"])
    first = ctx.rng.choice([signal.SIGINT, signal.SIGTERM])
    at = round(ctx.rng.uniform(0.05, 5.0 if kind == "preview" else 8.0), 2)
    signals = [(at, first)]
    if ctx.rng.random() < 0.5:
        signals.append((round(at + ctx.rng.choice([0.0, 0.01, 0.1, 0.5]), 2),
                        ctx.rng.choice([signal.SIGINT, signal.SIGTERM])))
    sent = " then ".join(f"{s.name} at {t}s" for t, s in signals)
    cond = ("--save-condition", "cond") if ctx.rng.random() < 0.4 else ()
    if kind == "batch":
        ctx.clip()
        jobs = [ctx.job(seed=i) for i in range(3)]
        manifest = ctx.write("jobs.jsonl", "\n".join(map(json.dumps, jobs)))
        args = ["batch", manifest, "-o", "renders/", *ctx.render_args(), *cond]
        return Run(f"batch of 3, {sent}", args, signals=signals, batch=True, either_signal=len(signals) > 1)
    video = ctx.clip(long=kind == "preview")
    return Run(f"{kind}{' ' + ' '.join(cond) if cond else ''}, {sent}",
               ctx.command(kind, video, extra=cond), ("out.mp4",), signals=signals, either_signal=len(signals) > 1)


def signal_pipeline(ctx: Context) -> Run:
    """The shell-pipeline inputs under a signal: the prompt from stdin, then a signal."""
    ctx.write("prompt.txt", ctx.rng.choice(["a room", "", "\ufeffa room\n", "x" * 5000, "\0"]))
    video = ctx.clip()
    at = round(ctx.rng.uniform(0.05, 6.0), 2)
    sig = ctx.rng.choice([signal.SIGINT, signal.SIGTERM])
    args = [a for a in ctx.command("rerender", video) if a not in ("--prompt", "a room")] + ["--prompt-file", "-"]
    return Run(f"rerender --prompt-file - , {sig.name} at {at}s", args, ("out.mp4",), signals=[(at, sig)],
               stdin_file="prompt.txt")


BUILDERS = {
    "weights": [weights_damaged],
    "depth": [depth_damaged, depth_damaged, depth_bytes],
    "signal": [signal_run, signal_run, signal_run, signal_pipeline],
}
