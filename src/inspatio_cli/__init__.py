"""inspatio-cli: rerender a monocular video along a new camera trajectory (InSpatio-World, 1.3B).

The package is a Python API first; the ``inspatio`` command is a thin layer over it. Stages, in the
order data flows: :mod:`.video` -> :mod:`.depth` -> :mod:`.cameras` -> :mod:`.warp` -> :mod:`.models`
(autoencoders, text, DiT) -> :mod:`.generate` -> :mod:`.video`.
"""

__version__ = "0.1.0"
