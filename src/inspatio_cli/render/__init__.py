"""Rendering a job: the trajectory preview (steps 1-4, no generator) and the generative rerender.

:mod:`.preview` writes source | warped | mask for a video and a trajectory; :mod:`.rerender` holds
:class:`~.rerender.Rerenderer`, which plans each render once (:mod:`.plan`; the weight names in the
torch-free :mod:`.needs`), loads the models once (:mod:`.models`), gets the prompt's embedding
(:mod:`.prompt`) and streams chunks through the STAR loop (:mod:`.stream`), also stepped chunk by chunk with
the caller's cameras by a :class:`~.session.RenderSession`; :mod:`.condition_videos`
writes the ``--save-condition`` videos of both. The public names are exported by the package root
(``from inspatio_cli import Rerenderer, preview``).
"""
