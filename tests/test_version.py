"""The version is written once (cpp/include/tapegrad/version.hpp) and read everywhere: the
package metadata, ``tapegrad.__version__``, the C++ macros, CMake's project version, the
CHANGELOG's newest entry; and the files a user looks for are there."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import tapegrad as tg

ROOT = Path(__file__).resolve().parent.parent


def header_version() -> str:
    text = (ROOT / "cpp/include/tapegrad/version.hpp").read_text()
    m = re.search(r'version = "(\d+\.\d+\.\d+)"', text)
    assert m, "version.hpp holds no version string"
    macros = [re.search(rf"#define TAPEGRAD_VERSION_{k} (\d+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    assert all(macros) and ".".join(mm.group(1) for mm in macros if mm) == m.group(1)
    return m.group(1)


def test_version_is_the_headers_everywhere() -> None:
    v = header_version()
    assert tg.__version__ == v
    assert importlib.metadata.version("tapegrad") == v
    assert "version" not in re.findall(r"^(\w+) =", (ROOT / "pyproject.toml").read_text(), re.M)[:8]


def test_changelog_and_license_are_there() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    newest = re.search(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.M)
    assert newest and newest.group(1) == header_version()
    for issue in (2, 3, 4, 9, 10, 11, 12, 13):  # each issue's work, as it landed
        assert f"issue {issue}:" in changelog
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and 'license = { text = "MIT" }' in (
        ROOT / "pyproject.toml").read_text()
    assert importlib.metadata.metadata("tapegrad")["License"] == "MIT"
