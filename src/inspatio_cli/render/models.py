"""The models a :class:`~.rerender.Rerenderer` keeps between renders, and their loading.

:class:`Models` holds the generator and the autoencoder (the Wan2.1 VAE or TAEHV) once built;
:func:`load_models` builds the missing ones from their weight files on the render device, in the
render precision (TAEHV in fp16 on CUDA unless fp32 is asked for, as the official ``--use_tae``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models import dit, tae, vae
from ..models.dit import CausalWanDiT
from ..models.vae import StreamingAutoencoder
from ..progress import Reporter
from ..weights import hub
from .needs import DEFAULT_GENERATOR, autoencoder_weights, generator_weights


@dataclass
class Models:
    """The models a :class:`~.rerender.Rerenderer` keeps between renders (``None`` until first needed).

    ``builds`` counts how often each was loaded from its weights (``generator``, ``autoencoder``), so
    callers (batches, tests) can check that models are built once; ``files`` holds the weight files they
    were loaded from by registry name (every later render's sidecar lists them too);
    ``generator_weights``: the registry name of the generator held (``generator``, or ``generator-1.5`` for
    ``--model world-1.5``). Models put here before the first render are used as they are and their weight
    files are not required. Share one holder only between renderers with the same device, precision and
    decoder.
    """

    generator: CausalWanDiT | None = None
    autoencoder: StreamingAutoencoder | None = None
    builds: dict[str, int] = field(default_factory=lambda: {"generator": 0, "autoencoder": 0})
    files: dict[str, Path] = field(default_factory=dict)
    generator_weights: str = "generator"

    def held(self, decoder: str) -> frozenset[str]:
        """Registry names of the weight files whose models are already here (for ``decoder``)."""
        return frozenset(name for name, model in ((self.generator_weights, self.generator),
                                                  (autoencoder_weights(decoder), self.autoencoder))
                         if model is not None)


def load_models(models: Models, paths: dict[str, Path] | None, *, decoder: str, device: torch.device,
                dtype: torch.dtype, weights_dir: str | Path | None, reporter: Reporter,
                model: str = DEFAULT_GENERATOR) -> tuple[CausalWanDiT, StreamingAutoencoder]:
    """The ``model``'s generator and the ``decoder``'s autoencoder of ``models``, the missing ones loaded
    now on ``device`` in ``dtype`` from ``paths`` (registry name -> file; default: resolved in
    ``weights_dir``, one :class:`WeightsError` for every missing file) and recorded in ``models.builds`` and
    ``files``. A generator held for the other model is replaced (both releases load strictly, keys
    ``model.*``)."""
    ae_name, gen_name = autoencoder_weights(decoder), generator_weights(model)
    if models.generator is not None and models.generator_weights != gen_name:
        models.generator = None
        models.files.pop(models.generator_weights, None)
    needed = [name for name, held in ((gen_name, models.generator), (ae_name, models.autoencoder))
              if held is None]
    if needed and not all(name in (paths or {}) for name in needed):
        paths = hub.resolve(needed, weights_dir, purpose="for rerender")
    if models.generator is None:
        reporter.info(f"loading the generator on {device} ({paths[gen_name].name})")
        models.generator = dit.load_generator(paths[gen_name], dtype=dtype, device=device, reporter=reporter)
        models.builds["generator"] += 1
        models.files[gen_name] = paths[gen_name]
        models.generator_weights = gen_name
    if models.autoencoder is None:
        path = paths[ae_name]
        reporter.info(f"loading the autoencoder on {device} ({path.name})")
        if decoder == "wan":
            models.autoencoder = vae.load_vae(path, dtype, device)
        else:
            tae_dtype = torch.float16 if device.type == "cuda" and dtype != torch.float32 else dtype
            models.autoencoder = tae.load_tae(path, tae_dtype, device)
        models.builds["autoencoder"] += 1
        models.files[ae_name] = path
    return models.generator, models.autoencoder
