"""Video input and output (PyAV), the first and last stage: probe, decode, fit to the model size, encode
H.264 atomically.

Frames inside the pipeline are float tensors ``(T, 3, H, W)`` in ``[-1, 1]``; uint8 ``(T, H, W, 3)`` RGB
exists only at this I/O edge. Decoding applies the display rotation stored in the file (as players do),
keeps the source fps (average rate and per-frame timestamps), and never resamples in time.

Fitting to the model resolution (default 480 x 832):

* ``stretch`` (the official behaviour): bilinear with antialias to exactly H x W, aspect ratio not kept.
* ``crop``: centre crop to the model aspect ratio, then the same resize.
* ``pad``: resize to fit inside H x W keeping the aspect ratio, then letterbox with black (-1).

Writing is H.264 (libx264, yuv420p, CRF 18 by default) at the source fps, with optional audio passthrough
trimmed to the video's duration, always through :class:`inspatio_cli.files.AtomicFile`. The encoder runs
on a background thread (PyAV releases the GIL while x264 works), so encoding overlaps the next chunk's
compute; :class:`Prefetch` does the same for decoding.

A still image (png, jpg, webp; EXIF orientation applied) is a source of one frame: ``probe`` and
``iter_frames`` read it through ``image``, so every stage takes a photo as it takes a video.

Modules, in the order data flows: ``container`` (opening a source, shared by the next three), ``image``
(still images: :func:`is_image`, :func:`read_image`), ``info`` (:func:`probe`, :class:`VideoInfo`,
:func:`with_fps`), ``decode`` (:func:`iter_frames` and lost-frame accounting), ``fit``
(:class:`Fit`, :func:`to_uint8`), ``threads`` (:class:`Prefetch`, the encode thread), ``audio`` (passthrough),
``writer`` (:class:`VideoWriter`).

Typical use::

    info = probe("clip.mp4")
    fit = Fit.make((info.height, info.width), (480, 832), "stretch")
    with VideoWriter("out.mp4", info.rate, audio_from="clip.mp4") as writer:
        for t, image in iter_frames("clip.mp4"):
            writer.write(fit.frames(image[None]))
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "VideoInfo": "info", "cut_off_warning": "info", "probe": "info", "with_fps": "info",
    "DEFAULT_IMAGE_FPS": "image", "DEFAULT_IMAGE_FRAMES": "image", "is_image": "image", "read_image": "image",
    "iter_frames": "decode", "lost_frames_warning": "decode",
    "Fit": "fit", "to_uint8": "fit",
    "Prefetch": "threads",
    "VideoWriter": "writer", "as_rate": "writer", "write_video": "writer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
