"""Modules compiled by mypyc (setup.py): Python imports the compiled copy beside the source.

A source edited after the build would go unused until the next build; :func:`stale` finds
those, so the tests refuse to run old code (``make`` rebuilds them).
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crawler", "dedupe", "flagging", "storage", "spiders")


def stale(root: Path = ROOT) -> list[str]:
    """Sources (relative to ``root``) newer than their compiled copy."""
    found: list[str] = []
    for package in PACKAGES:
        for suffix in EXTENSION_SUFFIXES:
            for built in sorted((root / package).glob(f"*{suffix}")):
                source = built.with_name(built.name[: -len(suffix)] + ".py")
                if source.exists() and source.stat().st_mtime > built.stat().st_mtime:
                    found.append(str(source.relative_to(root)))
    return found
