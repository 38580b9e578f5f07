"""The hostile set: hundreds of generated bad inputs, outputs and interruptions thrown at the real CLI, with
the outcome of each classified and counted.

Every case builds its own folder of inputs (tiny media, trajectories, manifests, weights, depth files, planted
"user" files), runs one ``inspatio`` command in a child process with a timeout (optionally sending SIGINT /
SIGTERM during the run) and is classified, worst first:

* ``data loss``: a file that existed before the run (input, planted file, shared fixture) changed or vanished;
* ``partial``: a temporary file left behind, or a new file after a failed or interrupted run (a batch may
  leave the jobs it finished: a video with its sidecar);
* ``internal``: ``internal error`` or a traceback on stderr, a crash (killed by a signal) or an undocumented
  exit code;
* ``hang``: the timeout ran out;
* ``bad message``: a failure whose stderr does not end with one ``error: ...`` line, an interrupted run that
  reports no signal, a ``--json`` failure whose stdout does not end with the ``error`` event, or exit 0
  with a promised output missing;
* ``ok``: anything else (success with its outputs, or a clean refusal).

By default a child is forked from this process after the CLI and PyTorch are imported (the start costs
milliseconds rather than seconds: the ~370 cases take 2-3 minutes on two shared cores); it runs
``inspatio_cli.cli.main(argv)`` exactly as ``python -m inspatio_cli`` does. ``--exec`` starts a fresh
``python -m inspatio_cli`` per case instead (full fidelity, several times slower); cases that depend on
the interpreter's start (``PYTHONIOENCODING``) always do. Cases with read-only folders or unreadable inputs
run without the capability that lets root ignore file permissions (always forked).

    python benchmarks/hostile.py                     # every case, 2 at a time; prints the table; exit 1 on failures
    python benchmarks/hostile.py --only depth signal # some classes
    python benchmarks/hostile.py --case output-013 --keep --show   # one case again, its folder kept, its output
    python benchmarks/hostile.py --list              # the case ids and what each does

Same ``--seed``, same cases (inputs, commands and signal times).
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

import hostile_damage  # noqa: E402
import hostile_files  # noqa: E402
import hostile_media  # noqa: E402
from hostile_judge import OUTCOMES, Child, Result, classify, snapshot  # noqa: E402
from hostile_kit import Case, Context, Fixtures, Run  # noqa: E402

COUNTS = {"video": 72, "path": 55, "manifest": 50, "output": 66, "weights": 40, "depth": 45, "signal": 40}
"""Cases per class: builders take turns (each draws its own variation)."""
CLASSES = tuple(COUNTS)
PRELOAD = ("inspatio_cli.cli", "inspatio_cli.render.rerender", "inspatio_cli.render.preview", "inspatio_cli.batch.run",
           "inspatio_cli.cameras.commands", "inspatio_cli.weights.checks")


def all_cases() -> list[Case]:
    """Every case of the set, in id order (``video-000`` ...)."""
    builders = {**hostile_media.BUILDERS, **hostile_files.BUILDERS, **hostile_damage.BUILDERS}
    return [Case(f"{cls}-{i:03d}", cls, builders[cls][i % len(builders[cls])])
            for cls, count in COUNTS.items() for i in range(count)]


def _start(case: Case, fixtures: Fixtures, workdir: Path, seed: int, fresh: bool) -> Child:
    folder = workdir / "cases" / case.id
    cache = workdir / "cache" / case.id
    for path in (folder, cache):
        if path.exists():
            _force_remove(path)
        path.mkdir(parents=True)
    context = Context(folder, fixtures, random.Random(f"{seed}:{case.id}"))
    run = case.build(context)
    before = snapshot(folder, fixtures.root)
    env = {**os.environ, "INSPATIO_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src"),
           "COLUMNS": "120", **run.env}
    env.pop("INSPATIO_WEIGHTS_DIR", None)
    stdin = folder / run.stdin_file if run.stdin_file else Path(os.devnull)
    child = Child(case, run, folder, before, time.monotonic(), signals=sorted(run.signals))
    sys.stdout.flush()
    sys.stderr.flush()
    if (fresh or run.fresh) and not run.permissions:
        with open(stdin, "rb") as i:
            child.popen = subprocess.Popen([sys.executable, "-m", "inspatio_cli", *run.args], cwd=folder, env=env,
                                           stdin=i, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        child.pid, child.pipes = child.popen.pid, {1: child.popen.stdout.fileno(), 2: child.popen.stderr.fileno()}
    else:
        pipes = {1: os.pipe(), 2: os.pipe()}
        child.pid = os.fork()
        if child.pid == 0:
            _child(run, folder, env, stdin, {fd: w for fd, (_, w) in pipes.items()})
        for fd, (r, w) in pipes.items():
            os.close(w)
            child.pipes[fd] = r
    for fd in child.pipes.values():
        os.set_blocking(fd, False)
    child.started = time.monotonic()
    return child


def _drop_file_override() -> None:
    """Let file permissions apply to this (root) process: clear CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    from its effective capabilities, so a read-only folder is read-only and an unreadable file unreadable."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    data[0].effective &= ~0b110
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def _child(run: Run, folder: Path, env: dict, stdin: Path, pipes: dict[int, int]) -> None:
    """In the forked child: the case's folder, environment, standard streams and limits, then the CLI."""
    code = 1
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM):  # as in a new process (this one's handler is Python's)
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(env)
        handle = os.open(stdin, os.O_RDONLY)
        os.dup2(handle, 0)
        os.close(handle)
        for fd, write_end in pipes.items():
            os.dup2(write_end, fd)
            os.close(write_end)
        if run.file_limit is not None:  # a small "disk": writes to files past it fail with EFBIG
            import resource
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (run.file_limit, run.file_limit))
        if run.permissions and os.geteuid() == 0:
            _drop_file_override()
        from inspatio_cli.cli import main
        try:
            main(list(run.args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the harness's own failure shows as a traceback on stderr
        import traceback
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken stream: nothing more to say
                pass
        os._exit(code)


def _drain(child: Child) -> None:
    """Read what the child has written to its stdout and stderr so far (the pipes never fill up)."""
    for fd, pipe in child.pipes.items():
        while True:
            try:
                chunk = os.read(pipe, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            child.output[fd] += chunk


def _poll(child: Child) -> int | None:
    """The child's exit code once it has ended (minus the signal number when a signal killed it)."""
    if child.popen is not None:
        return child.popen.poll()
    pid, status = os.waitpid(child.pid, os.WNOHANG)
    if pid == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def _kill(child: Child) -> None:
    try:
        os.kill(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if child.popen is not None:
        child.popen.wait()
    else:
        os.waitpid(child.pid, 0)


def run_cases(cases: list[Case], fixtures: Fixtures, workdir: Path, *, seed: int, jobs: int, timeout: float,
              fresh: bool, report) -> list[Result]:
    """Run ``cases``, at most ``jobs`` at a time, from this one thread (forking from a single thread is safe);
    ``report(result)`` is called as each finishes."""
    pending, running, results = list(cases), [], []
    try:
        _loop(pending, running, results, fixtures, workdir, seed, jobs, timeout, fresh, report)
    finally:  # stopped (Ctrl-C, SIGTERM, a harness error): no case is left running
        for child in running:
            _kill(child)
    return results


def _loop(pending: list[Case], running: list[Child], results: list[Result], fixtures: Fixtures, workdir: Path,
          seed: int, jobs: int, timeout: float, fresh: bool, report) -> None:
    while pending or running:
        while pending and len(running) < jobs:
            running.append(_start(pending.pop(0), fixtures, workdir, seed, fresh))
        time.sleep(0.02)
        for child in list(running):
            elapsed = time.monotonic() - child.started
            _drain(child)
            code = _poll(child)
            while code is None and child.signals and child.signals[0][0] <= elapsed:
                os.kill(child.pid, child.signals.pop(0)[1])  # still running (polled just before), so not a zombie
                child.sent += 1
            hung = code is None and elapsed > timeout
            if hung:
                _kill(child)
            if code is None and not hung:
                continue
            running.remove(child)
            _drain(child)
            for pipe in (child.popen.stdout, child.popen.stderr) if child.popen else child.pipes.values():
                pipe.close() if child.popen else os.close(pipe)
            result = classify(child, None if hung else code, elapsed, fixtures)
            results.append(result)
            report(result)


def _force_remove(path: Path) -> None:
    for base, dirs, _ in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(base, name), 0o755)
    shutil.rmtree(path, ignore_errors=True)


def table(results: list[Result]) -> str:
    """Cases per class and outcome, with the totals."""
    width = max(len(o) for o in OUTCOMES)
    head = f"{'class':<10}{'cases':>7}" + "".join(f"{o:>{width + 2}}" for o in OUTCOMES) + f"{'seconds':>10}"
    rows = [head, "-" * len(head)]
    for name in [*CLASSES, "total"]:
        mine = [r for r in results if name in ("total", r.case.cls)]
        if not mine:
            continue
        counts = "".join(f"{sum(r.outcome == o for r in mine):>{width + 2}}" for o in OUTCOMES)
        rows.append(f"{name:<10}{len(mine):>7}{counts}{sum(r.seconds for r in mine):>10.0f}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="the case set (inputs, commands, signal times)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--only", nargs="+", choices=CLASSES, help="only these classes")
    parser.add_argument("--case", nargs="+", help="only these case ids (e.g. output-013)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds before a case counts as a hang")
    parser.add_argument("--exec", dest="fresh", action="store_true",
                        help="a fresh 'python -m inspatio_cli' per case instead of a fork of this process")
    parser.add_argument("--workdir", type=Path, help="where the cases are built (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the case folders")
    parser.add_argument("--show", action="store_true", help="print each case's command, stdout and stderr")
    parser.add_argument("--list", action="store_true", help="list the case ids and what they do, run nothing")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # unwind, so running cases are killed

    cases = [c for c in all_cases() if (not args.only or c.cls in args.only) and (not args.case or c.id in args.case)]
    if args.case and len(cases) < len(args.case):
        parser.error(f"unknown case id among {args.case}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hostile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    print(f"hostile set: {len(cases)} cases, seed {args.seed}, {args.jobs} at a time, in {workdir}", file=sys.stderr)
    fixtures = Fixtures(workdir / "fixtures")
    if args.list:
        for case in cases:
            run = case.build(Context(workdir / "list" / case.id, fixtures, random.Random(f"{args.seed}:{case.id}")))
            print(f"{case.id:<14} {run.what}")
        _force_remove(workdir if args.workdir is None else workdir / "list")
        return 0
    if not args.fresh:
        for module in PRELOAD:  # imported once here, so that each forked case starts at once
            importlib.import_module(module)
    began = time.monotonic()

    def report(result: Result) -> None:
        flag = "" if result.outcome == "ok" else f"  <-- {result.outcome.upper()}: {result.detail}"
        print(f"{result.case.id:<14} {result.outcome:<11} exit {result.code!s:<4} {result.seconds:5.1f}s  "
              f"{result.run.what}{flag}", file=sys.stderr, flush=True)
        if args.show:
            print(f"  $ inspatio {' '.join(result.run.args)}\n  stdout: {result.stdout[-2000:]}\n"
                  f"  stderr: {result.stderr[-4000:]}", file=sys.stderr, flush=True)

    results = run_cases(cases, fixtures, workdir, seed=args.seed, jobs=args.jobs, timeout=args.timeout,
                        fresh=args.fresh, report=report)
    results.sort(key=lambda r: r.case.id)
    print(table(results))
    print(f"\n{len(results)} cases in {time.monotonic() - began:.0f} s (seed {args.seed}, "
          f"{'fresh interpreters' if args.fresh else 'forked children'}, {args.jobs} at a time)")
    bad = [r for r in results if r.outcome != "ok"]
    for r in bad:
        print(f"{r.case.id:<14} {r.outcome:<11} {r.run.what}: {r.detail}")
    if not args.keep and args.workdir is None:
        _force_remove(workdir)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
