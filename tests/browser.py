"""Headless Chromium for page tests: the DOM after the page's scripts ran, console errors, screenshots.

Chromium comes from the OS packages (`apt-get install -y chromium`); tests using it skip when it is absent.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
          "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0"]
# Chromium logs each console message as `...:CONSOLE:line] "text", source: URL (line)` (older versions:
# `CONSOLE(line)`); uncaught errors too.
_CONSOLE = re.compile(r':CONSOLE(?::\d+|\(\d+\))\] "(.*)", source: ')


def _run(url: str, *extra: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *_FLAGS, *extra, url], capture_output=True, text=True, timeout=timeout)


def load(url: str) -> tuple[str, list[str]]:
    """(the serialised DOM once scripts ran, the console messages) of the page at `url`."""
    done = _run(url, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, _CONSOLE.findall(done.stderr)


def screenshot(url: str, path: Path, size: str = "1100,700") -> Path:
    """A PNG screenshot of the page at `url`."""
    done = _run(url, f"--screenshot={path}", f"--window-size={size}")
    assert done.returncode == 0 and path.exists(), done.stderr[-2000:]
    return path


def count(dom: str, css_class: str) -> int:
    """Elements whose class attribute starts with `css_class` (e.g. "item " for the gallery's cards)."""
    return len(re.findall(rf'class="{re.escape(css_class)}', dom))
