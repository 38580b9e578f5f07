"""Shared fixtures: a weights folder with TINY random checkpoints in the official layout.

The files have the released names, formats and key layouts (``model.``-prefixed safetensors generator,
pickled Wan VAE / umT5 / TAEHV state dicts, a ``tokenizer.json``), only with small widths, so the whole
pipeline loads them through the same code as the real weights and runs on a CPU in seconds. Also: SIGINT
is handled in the test session even when it runs in the background (:func:`pytest_configure`).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from inspatio_cli.models.dit import DiTConfig, random_generator
from inspatio_cli.models.t5 import T5Config

TINY_T5 = T5Config(vocab_size=64, dim=32, dim_attn=32, dim_ffn=48, num_heads=2, encoder_layers=2)
TINY_DIT = DiTConfig(dim=128, ffn_dim=256, freq_dim=64, num_heads=1, num_layers=2, text_dim=TINY_T5.dim)
"""The DiT's head count is inferred as ``dim // 128``, so the tiny model has one head of 128 channels;
its text width equals the tiny umT5's."""
WEIGHT_FILES = {
    "generator": "InSpatio-World-1.3B/InSpatio-World-1.3B.safetensors",
    "vae": "Wan2.1-T2V-1.3B/Wan2.1_VAE.pth",
    "text-encoder": "Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth",
    "tokenizer": "Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json",
    "tae": "taehv/taew2_1.pth",
}


def write_tiny_weights(root: Path) -> dict[str, Path]:
    """Write every tiny checkpoint under ``root`` (layout of the official ``checkpoints/``); returns the
    paths by registry name."""
    from test_t5 import tiny_encoder
    from test_tae import tiny_tae
    from test_tokenizer import write_tiny_tokenizer
    from test_vae import tiny_vae

    paths = {name: root / rel for name, rel in WEIGHT_FILES.items()}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    generator = random_generator(TINY_DIT, seed=3, std=0.05)
    save_file({f"model.{k}": v.contiguous() for k, v in generator.state_dict().items()}, str(paths["generator"]))
    torch.save(tiny_vae(seed=1).state_dict(), paths["vae"])
    torch.save({k: v.bfloat16() for k, v in tiny_encoder(seed=2, config=TINY_T5).state_dict().items()},
               paths["text-encoder"])
    write_tiny_tokenizer(paths["tokenizer"])
    torch.save(tiny_tae(seed=4).state_dict(), paths["tae"])
    return paths


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder (``--weights-dir``) holding tiny random versions of every rerender checkpoint."""
    root = tmp_path_factory.mktemp("weights")
    write_tiny_weights(root)
    return root


def pytest_configure(config: pytest.Config) -> None:
    """Let the command-line processes the tests start be interrupted by SIGINT, as a terminal's Ctrl-C does.

    A non-interactive shell starts a background job (``pytest ... &``) with SIGINT ignored; an ignored
    signal stays ignored in every process started from there, and Python installs no KeyboardInterrupt
    handler when it starts with SIGINT ignored, so the tests that send SIGINT would wait for nothing. A
    handled signal is reset to the default in the new program, so handling SIGINT here (Python's usual
    handler: this session stops on Ctrl-C like a foreground one) gives every child the default.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): the warp
    is element-wise and memory-bound, so one thread is as fast on an idle machine and far faster on a shared
    CI runner, where oversubscribed threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
