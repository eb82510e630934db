"""Run the project's command-line programs in a subprocess, on this checkout's code.

A console script is ``module:function`` in setup.py; pip writes a wrapper that imports the module and calls
``sys.exit(function())``. ``run_console_script`` does exactly that for the entry declared in setup.py, so the
tests need no reinstall, and PYTHONPATH puts this checkout first (not whatever copy is pip-installed)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def console_scripts() -> dict[str, str]:
    """name → "module:function", as declared in setup.py's console_scripts."""
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    return dict(re.findall(r'"([\w-]+)=([\w.]+:\w+)"', text))


def run_console_script(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    module, function = console_scripts()[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; sys.exit({function}())"
    return run_python("-c", code, *args, timeout=timeout)


def run_python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=checkout_env(), cwd=ROOT)
