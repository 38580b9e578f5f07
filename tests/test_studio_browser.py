"""``inspatio studio``'s page in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven
through chromedriver's W3C HTTP protocol, no extra package): the server runs in this process on a free port,
and a screenshot must show the point cloud's colours in the 3D view and the warp preview in the panel."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inspatio_cli.studio import StudioState, open_source
from media import make_clip
from test_preview_pipeline import planar_depth

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WINDOW = (1000, 640)
PANEL_PX = 335
"""Width of viser's control panel at the right edge of the page."""
RED, BLUE = (230, 20, 20), (20, 40, 230)
DEADLINE_S = 40.0

pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and DRIVER.exists()),
                                reason="needs /usr/bin/chromium and /usr/bin/chromedriver "
                                       "(apt-get install chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """A chromedriver process and one headless Chromium session, spoken to over HTTP."""

    def __init__(self, profile: Path):
        self.port = _free_port()
        self.process = subprocess.Popen([str(DRIVER), f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.05)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"]
        options = {"binary": str(CHROMIUM), "args": args}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": options}}})["sessionId"]

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["value"]

    def open(self, url: str) -> None:
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("GET", f"/session/{self.session}/screenshot"))

    def close(self) -> None:
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)


def _near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 60) -> int:
    """How many pixels of ``pixels`` (H, W, 3) lie within ``tolerance`` of ``colour`` on every channel."""
    return int((np.abs(pixels.astype(int) - colour) <= tolerance).all(-1).sum())


def test_page_shows_the_point_cloud_and_the_preview(tmp_path):
    frames = np.empty((4, 48, 80, 3), np.uint8)
    frames[:, :, :40], frames[:, :, 40:] = RED, BLUE
    pytest.importorskip("viser")  # the optional 'studio' extra
    video = make_clip(tmp_path / "clip.mp4", frames, fps=12)
    planar_depth(4).save(tmp_path / "clip.depth.safetensors")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    from inspatio_cli.studio import serve

    server = serve(StudioState(open_source(video)), port=0)
    driver = Driver(tmp_path / "profile")
    try:
        driver.open(server.url)
        deadline, shown = time.monotonic() + DEADLINE_S, False
        while not shown and time.monotonic() < deadline:
            time.sleep(0.5)
            png = driver.screenshot()
            shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            view, panel = shot[:, : -PANEL_PX - 5], shot[:, -PANEL_PX:]
            shown = all(_near(part, colour) > 300 for part in (view, panel) for colour in (RED, BLUE))
    finally:
        driver.close()
        server.stop()
        torch.set_num_threads(threads)
    (tmp_path / "studio.png").write_bytes(png)
    assert shot.std() > 10, "the screenshot is blank"
    assert shown, f"no point cloud or preview in the screenshot (kept at {tmp_path / 'studio.png'})"
