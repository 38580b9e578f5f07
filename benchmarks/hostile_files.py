"""Hostile cases of the manifest and output classes: batch manifests with bad keys, values, encodings, sizes
and colliding outputs; outputs that exist, are inputs, folders, links, read-only, too long or on a full disk."""

from __future__ import annotations

import json
import os


from hostile_kit import Context, Run

USER_TEXT = "a file the user cares about\n"


def _batch(ctx: Context, what: str, manifest: str, extra: tuple[str, ...] = (), dry: bool | None = None) -> Run:
    """``batch MANIFEST -o renders/`` with the tiny models: usually a dry run, sometimes a real one."""
    dry = ctx.rng.random() < 0.75 if dry is None else dry
    args = ["batch", manifest, "-o", "renders/", *ctx.render_args(), *extra] + (["--dry-run"] if dry else [])
    return Run(f"batch{' --dry-run' if dry else ''}: {what}", args, batch=True,
               stdin_file=manifest if manifest == "-" else None)


# ---------------------------------------------------------------------------------------------- manifest

MANIFEST_KEYS = ["seed", "crf", "fit", "size", "frames", "fps", "freeze", "slow", "reverse", "extend", "min_frames",
                 "audio", "skip_bad_frames", "save_condition", "output", "prompt", "prompt_file", "depth", "video",
                 "trajectory", "format", "scale", "relative_to_source", "speed", "Video", ""]
MANIFEST_VALUES = [None, -1, 2 ** 70, "x", [], {}, float("nan"), True, "", "../../x.mp4", "a\0b", "y" * 100000,
                   0, 1.5, ["mid:2"], "clip.mp4", "renders/", "/", "orbit_left", "\u202e.mp4"]


def manifest_values(ctx: Context) -> Run:
    ctx.clip()
    jobs = [ctx.job(seed=i) for i in range(ctx.rng.randint(1, 3))]
    key, value = ctx.rng.choice(MANIFEST_KEYS), ctx.rng.choice(MANIFEST_VALUES)
    jobs[ctx.rng.randrange(len(jobs))][key] = value
    text = "\n".join(json.dumps(j) for j in jobs)
    return _batch(ctx, f"jsonl {key!r} = {str(value)[:20]!r}", ctx.write("jobs.jsonl", text))


def manifest_csv(ctx: Context) -> Run:
    ctx.clip()
    rows = [["video", "trajectory", "seed"], ["clip.mp4", str(ctx.fx.orbit), "1"], ["clip.mp4", "orbit_left", "2"]]
    damage = ctx.rng.choice(["none", "missing column", "extra cell", "quoted newline", "bom", "utf16", "latin1",
                             "semicolons", "blank rows", "duplicate header", "header only", "nan seed", "unclosed"])
    text_rows = [",".join(r) for r in rows]
    if damage == "missing column":
        text_rows[1] = "clip.mp4"
    elif damage == "extra cell":
        text_rows[2] += ",9,9"
    elif damage == "quoted newline":
        text_rows[1] = 'clip.mp4,"orbit\nleft",1'
    elif damage == "semicolons":
        text_rows = [t.replace(",", ";") for t in text_rows]
    elif damage == "blank rows":
        text_rows[1:1] = ["", ",,", " "]
    elif damage == "duplicate header":
        text_rows[0] = "video,video,seed"
    elif damage == "header only":
        text_rows = text_rows[:1]
    elif damage == "nan seed":
        text_rows[1] = text_rows[1][:-1] + "nan"
    elif damage == "unclosed":
        text_rows[2] = 'clip.mp4,"orbit_left,2'
    text = "\r\n".join(text_rows) + "\n"
    encoded = {"bom": b"\xef\xbb\xbf" + text.encode(), "utf16": text.encode("utf-16"),
               "latin1": text.replace("clip", "cl\u00efp").encode("latin-1")}.get(damage, text.encode())
    return _batch(ctx, f"csv, {damage}", ctx.write("jobs.csv", encoded))


def manifest_list(ctx: Context) -> Run:
    ctx.clip()
    lines = ["clip.mp4"]
    damage = ctx.rng.choice(["comment", "missing", "duplicate", "folder", "crlf", "nul", "spaces", "stdin", "glob"])
    lines += {"comment": ["# a comment", "", "clip.mp4 # inline"], "missing": ["gone.mp4"], "duplicate": ["clip.mp4"],
              "folder": ["."], "crlf": ["clip.mp4\r"], "nul": ["cl\0ip.mp4"], "spaces": ["  clip.mp4  "],
              "stdin": [], "glob": ["*.mp4"]}[damage]
    name = ctx.write("videos.txt", "\n".join(lines) + "\n")
    return _batch(ctx, f"list of videos, {damage}", "-" if damage == "stdin" else name, ("-t", "orbit_left"))


def manifest_broken(ctx: Context) -> Run:
    ctx.clip()
    damage = ctx.rng.choice(["noise", "deep", "truncated", "utf16", "empty", "folder", "array", "huge line",
                             "not object", "self"])
    good = json.dumps(ctx.job())
    data = {"noise": ctx.noise(ctx.rng.choice([1, 100, 5000])), "deep": ("[" * 100000 + "]" * 100000).encode(),
            "truncated": good[:ctx.rng.randrange(1, len(good))].encode(), "utf16": good.encode("utf-16"),
            "empty": b"", "array": json.dumps([ctx.job()]).encode(), "huge line": (" " * 3_000_000 + good).encode(),
            "not object": b"1\n\"x\"\nnull\n", "self": json.dumps(ctx.job(video="jobs.jsonl")).encode()}
    if damage == "folder":
        (ctx.dir / "jobs.jsonl").mkdir()
    else:
        ctx.write("jobs.jsonl", data[damage])
    return _batch(ctx, f"jsonl, {damage}", "jobs.jsonl")


def manifest_huge(ctx: Context) -> Run:
    ctx.clip()
    count = ctx.rng.choice([300, 3000])
    kind = ctx.rng.choice(["seeds", "same", "outputs"])
    jobs = [ctx.job(seed=i) if kind == "seeds" else ctx.job() if kind == "same" else ctx.job(output=f"o{i % 7}.mp4")
            for i in range(count)]
    return _batch(ctx, f"{count} jobs, {kind}", ctx.write("jobs.jsonl", "\n".join(map(json.dumps, jobs))), dry=True)


def manifest_collisions(ctx: Context) -> Run:
    ctx.clip()
    ctx.write("keep.mp4", USER_TEXT)
    damage = ctx.rng.choice(["same output", "output is video", "output is manifest", "output is a fixture",
                             "output exists", "condition holds video", "condition is other output",
                             "output in condition", "output escapes", "depth is output"])
    jobs = [ctx.job(seed=1), ctx.job(seed=2)]
    if damage == "same output":
        jobs[0]["output"] = jobs[1]["output"] = "a.mp4"
    elif damage == "output is video":
        jobs[0]["output"] = "../clip.mp4"
    elif damage == "output is manifest":
        jobs[0]["output"] = "../jobs.jsonl"
    elif damage == "output is a fixture":
        jobs[0]["output"] = str(ctx.fx.clip)
    elif damage == "output exists":
        jobs[0]["output"] = "../keep.mp4"
    elif damage == "condition holds video":
        jobs[0]["save_condition"] = "."
    elif damage == "condition is other output":
        jobs[0]["save_condition"], jobs[1]["output"] = "cond", "cond/mask.mp4"
    elif damage == "output in condition":
        jobs[0]["save_condition"], jobs[0]["output"] = "c", "c/warped.mp4"
    elif damage == "output escapes":
        jobs[0]["output"] = "../../../../../../tmp/../" + str(ctx.dir / "esc.mp4")
    else:
        jobs[0]["depth"], jobs[1]["output"] = "d.depth.safetensors", "../d.depth.safetensors"
        ctx.depth("d.depth.safetensors", 12)
    return _batch(ctx, damage, ctx.write("jobs.jsonl", "\n".join(map(json.dumps, jobs))))


# ---------------------------------------------------------------------------------------------- output

def _output_run(ctx: Context, what: str, out: str, extra: tuple[str, ...] = (), **run) -> Run:
    kind = run.pop("kind", None) or ctx.rng.choice(["preview", "preview", "rerender", "convert"])
    video = ctx.clip()
    if kind == "convert":
        extra = tuple(e for e in extra if e != "--save-condition")
        args = ["trajectory", "convert", str(ctx.fx.orbit), "-o", out, "--to", "c2w", "--depth", "clip.depth.safetensors"]
        return Run(f"trajectory convert: {what}", args + [e for e in extra if e == "--overwrite"], (out,), **run)
    return Run(f"{kind}: {what}", ctx.command(kind, video, out=out, extra=extra), (out,), **run)


def output_existing(ctx: Context) -> Run:
    name = ctx.rng.choice(["out.mp4", "out.json", "cond/warped.mp4", "cond/mask.mp4"])
    ctx.write(name, USER_TEXT)
    overwrite = ctx.rng.random() < 0.3
    extra = ("--save-condition", "cond") + (("--overwrite",) if overwrite else ())
    return _output_run(ctx, f"{name} exists{' (--overwrite)' if overwrite else ''}", "out.mp4", extra,
                       replaceable=(name,) if overwrite else ())


def output_is_input(ctx: Context) -> Run:
    ctx.clip()
    target = ctx.rng.choice(["clip.mp4", "clip.depth.safetensors", "hard.mp4", "soft.mp4", "clip.json",
                             "sub/../clip.mp4", str(ctx.dir / "clip.mp4"), "./clip.mp4"])
    (ctx.dir / "sub").mkdir()
    if target == "hard.mp4":
        os.link(ctx.dir / "clip.mp4", ctx.dir / "hard.mp4")
    elif target == "soft.mp4":
        os.symlink("clip.mp4", ctx.dir / "soft.mp4")
    overwrite = ctx.rng.random() < 0.5
    return _output_run(ctx, f"-o {target} (an input){' --overwrite' if overwrite else ''}", target,
                       ("--overwrite",) if overwrite else ())


def output_condition(ctx: Context) -> Run:
    damage = ctx.rng.choice(["dir holds video", "out in dir", "dir is a file", "dir is the output", "dir is video",
                             "cond dir exists with user files"])
    out, cond = "out.mp4", "cond"
    if damage == "dir holds video":
        cond = "."
    elif damage == "out in dir":
        out = ctx.rng.choice(["cond/mask.mp4", "cond/warped.mp4"])
    elif damage == "dir is a file":
        ctx.write("cond", USER_TEXT)
    elif damage == "dir is the output":
        cond = "out.mp4"
    elif damage == "dir is video":
        cond = "clip.mp4"
    else:
        ctx.write("cond/notes.txt", USER_TEXT)
    kind = ctx.rng.choice(["preview", "rerender"])
    return _output_run(ctx, f"--save-condition {cond}: {damage}", out, ("--save-condition", cond), kind=kind)


def output_trajectory_tools(ctx: Context) -> Run:
    """``trajectory convert`` / ``show`` writing over their own input, a planted file or the depth file."""
    traj = ctx.copy(ctx.fx.orbit)
    ctx.clip()
    ctx.write("user.png", USER_TEXT)
    target = ctx.rng.choice([traj, "user.png", "clip.depth.safetensors", "clip.mp4", "new.png", "new.npy"])
    if target.endswith(".png"):
        args = ["trajectory", "show", traj, "-o", target, "--depth", "clip.depth.safetensors"]
    else:
        args = ["trajectory", "convert", traj, "-o", target, "--to", "npy" if target.endswith(".npy") else "c2w",
                "--depth", "clip.depth.safetensors"]
    return Run(f"trajectory {args[1]} -o {target}", args, (target,))


def output_batch_condition(ctx: Context) -> Run:
    """A real batch whose condition folder or output folder already holds the user's files."""
    ctx.clip()
    planted = ctx.rng.choice(["cond/warped.mp4", "cond/mask.mp4", "renders/clip__orbit.mp4", "renders/clip__orbit.json",
                              "cond/clip__orbit__1/mask.mp4"])
    ctx.write(planted, USER_TEXT)
    jobs = [ctx.job(save_condition="cond")] if "__1" not in planted else [ctx.job(seed=i) for i in (1, 2)]
    extra = ("--save-condition", "cond") if "__1" in planted else ()
    return _batch(ctx, f"{planted} exists", ctx.write("jobs.jsonl", "\n".join(map(json.dumps, jobs))), extra, dry=False)


def output_shape(ctx: Context) -> Run:
    (ctx.dir / "adir").mkdir()
    out = ctx.rng.choice(["adir", "adir/", "new/", "a/b/c/out.mp4", "out.xyz", "out", ".", "..", ".mp4", "out.MP4",
                          "out.json", "out.mkv", "-", "/dev/null", "/dev/full", "\u202eout.mp4", "o\nut.mp4"])
    return _output_run(ctx, f"-o {out!r}", out)


def output_links(ctx: Context) -> Run:
    ctx.write("user.mp4", USER_TEXT)
    (ctx.dir / "adir").mkdir()
    target = ctx.rng.choice(["user.mp4", "nowhere/out.mp4", "adir", "missing.mp4", str(ctx.fx.clip)])
    os.symlink(target, ctx.dir / "out.mp4")
    run = _output_run(ctx, f"-o a link to {os.path.basename(target)}", "out.mp4")
    if target == "adir":  # an existing folder: outputs go into it (README: -o is a folder when it exists)
        run.outputs = ()
    return run


def output_long_name(ctx: Context) -> Run:
    length = ctx.rng.choice([200, 230, 245, 251, 255, 300])
    name = "n" * (length - 4) + ".mp4"
    return _output_run(ctx, f"-o a {length}-character name", name, ("--save-condition", "cond"))


def output_read_only(ctx: Context) -> Run:
    (ctx.dir / "ro").mkdir()
    ctx.write("ro/out.mp4", USER_TEXT) if ctx.rng.random() < 0.3 else None
    os.chmod(ctx.dir / "ro", 0o555)
    where = ctx.rng.choice(["output", "condition"])
    out, extra = ("ro/new.mp4", ()) if where == "output" else ("out.mp4", ("--save-condition", "ro"))
    return _output_run(ctx, f"{where} in a read-only folder", out, extra, permissions=True)


def output_disk_full(ctx: Context) -> Run:
    limit = ctx.rng.choice([0, 100, 3000, 20000, 60000])
    extra = ("--save-condition", "cond") if ctx.rng.random() < 0.5 else ()
    return _output_run(ctx, f"disk full after {limit} bytes per file", "out.mp4", extra, file_limit=limit)


def env_encoding(ctx: Context) -> Run:
    """Not a class of its own: a case of the output class run in a fresh interpreter with ASCII stdio."""
    video = ctx.clip("cl\u00e9 \u6f22.mp4")
    kind = "preview" if ctx.rng.random() < 0.5 else "info"
    return Run(f"{kind} of a unicode name with PYTHONIOENCODING=ascii", ctx.command(kind, video, out="\u00e9.mp4"),
               () if kind == "info" else ("\u00e9.mp4",), env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C"}, fresh=True)


BUILDERS = {
    "manifest": [manifest_values, manifest_values, manifest_csv, manifest_list, manifest_broken, manifest_huge,
                 manifest_collisions, manifest_collisions],
    "output": [output_existing, output_is_input, output_condition, output_shape, output_links, output_long_name,
               output_read_only, output_disk_full, env_encoding, output_trajectory_tools,
               output_batch_condition],
}
