"""The HTML report in a real browser: headless Chromium renders it to PNG at desktop and at phone width."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.test_report_html import build_report

pytestmark = [pytest.mark.browser]  # what it needs: the fast tier leaves it out

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def chromium() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        pytest.fail("chromium is missing: the report's browser check needs it (Debian: apt-get install -y chromium; "
                    "`make test` installs it)", pytrace=False)
    return found


def screenshot(page: Path, png: Path, width: int, height: int, profile: Path) -> Path:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert png.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return png


def png_facts(png: Path) -> tuple[int, int, float]:
    """(width, height, busy): busy is the share of filtered pixel bytes that are not zero, i.e. that differ
    from their neighbours; a blank page is close to 0 (PNG filters turn flat areas into zeros)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour = header[:4]
    stride = 1 + width * CHANNELS[colour] * depth // 8
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, stride)[:, 1:]
    return width, height, float(np.count_nonzero(rows)) / rows.size


@pytest.mark.slow
def test_the_report_renders_in_chromium_at_desktop_and_phone_width(tmp_path: Path):
    page = build_report(tmp_path / "run")
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")
    shots = {}
    for name, target, (w, h) in (("desktop", page, (1400, 1000)), ("phone", page, (390, 844)),
                                 ("blank", blank, (390, 844))):
        shots[name] = png_facts(screenshot(target, tmp_path / f"{name}.png", w, h, tmp_path / f"profile-{name}"))
    assert shots["desktop"][:2] == (1400, 1000) and shots["phone"][:2] == (390, 844)
    assert shots["blank"][2] < 0.005, "the blank page is not blank: the measure of a drawn page is broken"
    for name in ("desktop", "phone"):
        assert shots[name][2] > 0.01, f"the report rendered at {name} width looks blank ({shots[name][2]:.4f})"
