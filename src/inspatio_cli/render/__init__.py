"""Rendering a job: the trajectory preview (steps 1-4, no generator) and the generative rerender.

:mod:`.preview` writes source | warped | mask for a video and a trajectory; :mod:`.rerender` holds
:class:`~.rerender.Rerenderer`, which loads the models once and streams chunks through the STAR loop. The
public names are exported by the package root (``from inspatio_cli import Rerenderer, preview``).
"""
