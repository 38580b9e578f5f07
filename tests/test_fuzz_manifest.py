"""Fuzzing the batch manifest reader and job planner (``read_manifest`` + ``plan_jobs``) in the style of
``test_fuzz_parsers``: JSONL, CSV and plain-list manifests, detected by extension or content, mutated from
valid seeds that name real videos, trajectories and prompt files. Property: a validated job list or an
InspatioError (one line), nothing else.

The default run does ``fuzzing.LIGHT_EXAMPLES`` per manifest kind (fixed inputs); ``pytest -m fuzz -s``
does ``fuzzing.FULL_EXAMPLES`` and prints the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import strategies as st

from fuzzing import EXAMPLES, fuzz, json_inputs, text_inputs
from inspatio_cli.batch import JobDefaults, plan_jobs, read_manifest
from inspatio_cli.choices import VIDEO_SUFFIXES
from media import make_clip, pattern
from test_preview_pipeline import ORBIT

JSON_SEEDS = [
    {"video": "a.mp4", "trajectory": "orbit.txt", "output": "one.mp4", "seed": 3, "prompt": "a cat"},
    {"video": "b.mp4", "trajectory": "dolly_in", "size": [32, 64], "crf": 30, "freeze": ["mid:2"],
     "prompt_file": "prompt.txt", "audio": False},
    {"video": "a.mp4", "scale": 0.5, "extend": "loop", "min_frames": 20, "reverse": "0:3", "fit": "pad"},
]
TEXT_SEEDS = [
    "\n".join(json.dumps(s) for s in JSON_SEEDS) + "\n",
    "video,trajectory,output,seed,crf,size,freeze\na.mp4,orbit.txt,one.mp4,1,18,32x64,mid:2\n"
    "b.mp4,dolly_in,,2,,,\n\"a.mp4\",,\"two, words.mp4\",3,40,,0:1;2:1\n",
    "# videos\na.mp4\n\nsub/../b.mp4\n",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two short videos, a trajectory file and a prompt file that the seeds name."""
    root = tmp_path_factory.mktemp("manifest")
    for seed, name in enumerate("ab"):
        make_clip(root / f"{name}.mp4", pattern(8, 32, 48, seed=seed), fps=8)
    (root / "orbit.txt").write_text(ORBIT)
    (root / "prompt.txt").write_text("a red car\n")
    (root / "sub").mkdir()
    return root


def _check(jobs) -> None:
    outputs = [job.output.resolve() for job in jobs]
    assert len(set(outputs)) == len(outputs)
    assert all(job.output.suffix.lower() in VIDEO_SUFFIXES and job.frames > 0 and job.chunks > 0 for job in jobs)


@pytest.mark.parametrize("name, strategy", [
    ("jobs.jsonl", st.one_of(json_inputs(JSON_SEEDS), text_inputs(TEXT_SEEDS[:1]))),
    ("jobs.csv", text_inputs(TEXT_SEEDS[1:2])),
    ("jobs.txt", text_inputs(TEXT_SEEDS)),
])
@EXAMPLES
def test_manifest_reader_and_planner(folder, name, strategy, examples):
    path = folder / name
    defaults = JobDefaults(("orbit_left",), (0, 1), size=(32, 48))

    def target(data: bytes):
        path.write_bytes(data)
        manifest = read_manifest(path)
        return plan_jobs(manifest.rows, defaults, base=manifest.base, output=folder / "out",
                         manifest=manifest.path, problems=manifest.problems)

    stats = fuzz(f"manifest ({name})", target, strategy, examples, check=_check)
    assert stats.examples >= examples and not stats.unexpected
