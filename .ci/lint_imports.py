"""Check the layering contracts of pyproject.toml ([tool.importlinter]) with import-linter.

``agents/``, ``envs/`` and ``configs/`` are installed as ``reflect.agents``, ``reflect.envs`` and
``reflect.configs`` (setuptools' package-dir mapping), which import-linter cannot see in the source
tree; this script lays the package out as installed (symbolic links in a temporary folder) and runs
``lint-imports`` on it. Exit status: import-linter's (0 when every contract is kept).

    python .ci/lint_imports.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"agents": "agents", "envs": "envs", "configs": "configs"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="reflect-layers-") as folder:
        stage = Path(folder)
        package = stage / "reflect"
        package.mkdir()
        for entry in (ROOT / "reflect").iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        for name, source in MAPPED.items():
            (package / name).symlink_to(ROOT / source)
        shutil.copy(ROOT / "pyproject.toml", stage / "pyproject.toml")
        env = {**os.environ, "PYTHONPATH": str(stage)}
        linter = shutil.which("lint-imports") or "lint-imports"
        return subprocess.call([linter, "--no-cache"], cwd=stage, env=env)


if __name__ == "__main__":
    sys.exit(main())
