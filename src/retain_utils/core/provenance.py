"""Where a number came from: the package version and a hash of its source, the git commit, the CPU's
precision-relevant flags and the default dtype. Written beside every campaign point and into run fingerprints."""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from .. import __version__

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the whole retain_utils package
REPOSITORY = PACKAGE_DIR.parents[1]  # the checkout, for an editable install
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # the ones that decide bf16 vs fp32 speed


@lru_cache(maxsize=1)
def source_hash() -> str:
    """12 hex digits over every ``.py`` file of the package: any code edit gives a new hash."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def cpu_flags() -> list[str]:
    """The precision-relevant flags of this CPU (empty where /proc/cpuinfo cannot be read)."""
    from . import models

    flags = models.flags_of(models.cpuinfo())
    return [f for f in CPU_FLAGS if f in flags]


def where(version: str, flags) -> str:
    """Where a number was computed, as every time and verification names it: the CPU flags (None: unknown) and
    the package version."""
    shown = "unknown CPU flags" if flags is None else f"CPU flags {' '.join(flags) or 'none of avx2 and up'}"
    return f"{shown}, package {version}"


def git_state(root: str | os.PathLike, exclude: tuple[str, ...] = ()) -> dict:
    """``{"commit": sha or None, "dirty": [changed paths]}`` of the repository at ``root``; paths under
    ``exclude`` (relative to ``root``) do not count as changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=all", "--", ".",
                     *(f":(exclude){p}" for p in exclude))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": []}
    return {"commit": commit, "dirty": [line[3:] for line in status.splitlines() if line.strip()]}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def machine(model: torch.nn.Module | None = None) -> dict:
    """The machine facts a time or a number depends on; with ``model``, also the device and dtype of its weights."""
    from .models import default_dtype

    facts = {"cpu_flags": cpu_flags(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
             "dtype": _dtype_name(default_dtype("cpu")), "torch": torch.__version__}
    if model is not None:
        weights = next(model.parameters())
        facts.update(device=str(weights.device), weights=_dtype_name(weights.dtype))
    return facts


def stamp(root: str | os.PathLike, exclude: tuple[str, ...] = ()) -> dict:
    """Everything above in one record: version, source hash, git state, machine."""
    return {"version": __version__, "source": source_hash(), **git_state(root, exclude), **machine()}
