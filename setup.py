"""Build of Glas: metadata in setup.cfg; the hot modules of the ingest path compiled by mypyc.

Every post goes through normalising, exact and near-duplicate matching, flagging and row
making; compiled, those modules take ~12 % fewer instructions (docs/development.md). Their
sources stay the reference: where no C compiler is at hand Glas runs them as Python (the
extensions are optional; `make setup` says so), and ``make`` rebuilds them when a source changes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def compiled_modules() -> list[str]:
    """The module files listed under ``[tool.glas] compiled`` in pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["tool"]["glas"]["compiled"])


def extensions() -> list:
    from mypyc.build import mypycify

    flags = ["--ignore-missing-imports", "--follow-imports=silent"]
    flags += ["--disable-error-code=import-untyped"]
    built = mypycify([*flags, *compiled_modules()], opt_level="3", debug_level="0")
    for extension in built:
        extension.optional = True  # a failed compile leaves the Python modules in charge
    return built


if __name__ == "__main__":
    setup(ext_modules=extensions())
