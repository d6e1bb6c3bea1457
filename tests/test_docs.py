"""The docs site's API reference covers the package: every public module has a page (in the
reference hook's MODULES and in mkdocs.yml's nav), and every public name a one-line summary and,
where the hook names one, a PyTorch counterpart that exists. The site itself is built, in strict
mode, by the test command (scripts/test.sh: ``mkdocs build --strict``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import tapegrad as tg

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("mkdocs")
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
import reference  # noqa: E402


def public_modules() -> list:
    names = ["tapegrad"]
    for info in pkgutil.walk_packages(tg.__path__, "tapegrad."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def test_every_public_module_has_a_reference_page_in_the_nav() -> None:
    documented = {m for m, _, _ in reference.MODULES}
    exempt = {"tapegrad.demo", "tapegrad.utils", "tapegrad.backends", "tapegrad.nn.layers", "tapegrad.nn.conv",
              "tapegrad.nn.rnn", "tapegrad.nn.transformer", "tapegrad.nn.loss", "tapegrad.nn.module"}
    missing = [m for m in public_modules() if m not in documented and m not in exempt]
    assert not missing, f"public modules without a reference page: {missing}"
    nav = (ROOT / "mkdocs.yml").read_text()
    for m in documented:
        assert f"reference/{m}.md" in nav, m


def test_every_public_name_has_a_summary_and_real_counterparts() -> None:
    torch = pytest.importorskip("torch")
    rows = 0
    for module, torch_module, about in reference.MODULES:
        text, missing = reference.page(module, torch_module, about)
        assert not missing, missing
        mod = importlib.import_module(module)
        rows += len(reference.public_names(mod))
        for line in text.splitlines():
            if line.startswith("| `torch") or "| `torch." in line:
                name = line.rsplit("`torch", 1)[1].split("`")[0]
                obj = torch
                for part in ("torch" + name).split(".")[1:]:
                    assert hasattr(obj, part), line
                    obj = getattr(obj, part)
    assert rows > 300  # (the package's public surface: every name is a row)


def test_the_test_command_builds_the_site_strictly() -> None:
    """mkdocs's strict mode counts the warnings it logs; `-q` logs none, so a quiet strict build
    passes with broken links. The test command's build must not be quiet."""
    line = next(text for text in (ROOT / "scripts" / "test.sh").read_text().splitlines()
                if text.startswith("NO_MKDOCS_2_WARNING=1 mkdocs build"))
    words = line.split()
    assert "--strict" in words and "-q" not in words and "--quiet" not in words
