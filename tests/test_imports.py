"""Every module imports on its own in a fresh interpreter (no import cycle hides behind import order).

Marked slow: 100-odd interpreters, each importing torch (about 90 s on 2 cores); CI runs it.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reflect
import reflect.agents
import reflect.envs


def all_modules() -> list[str]:
    names = {"reflect.agents", "reflect.envs"}
    for package in (reflect, reflect.agents, reflect.envs):
        names |= {info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")}
    return sorted(names)


def import_error(module: str, cwd: Path | None = None) -> str | None:
    """The error of ``import module`` in a fresh interpreter, or ``None``."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                            cwd=cwd, timeout=120)
    return None if result.returncode == 0 else result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("module", all_modules())
def test_each_module_imports_first(module: str) -> None:
    assert import_error(module) is None


@pytest.mark.slow
def test_an_import_cycle_is_caught(tmp_path: Path) -> None:
    """Negative control: importing one end of a cycle first fails, and the check reports it."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic.b import B\nA = 1\n")
    (package / "b.py").write_text(textwrap.dedent("""
        from cyclic.a import A
        B = A + 1
    """))
    error = import_error("cyclic.a", cwd=tmp_path)
    assert error is not None and "partially initialized module" in error
