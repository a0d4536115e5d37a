"""The environment a measurement belongs to: two runs are comparable only when it matches.

pytest-benchmark keys storage by OS/Python and merely warns on a mismatch; here the GPU, driver,
ROCm/CUDA, vLLM, torch, model weights, launch flags and workload are part of the key. The record
and ``diff`` are pure; the ``gather``/``weights_sha256`` functions do the I/O. In a file it is a
``baseline_records.FingerprintRecord`` (a msgspec struct), via ``to_record``/``from_record``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as _platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, cast

import msgspec

from pytest_llmperf import __version__
from pytest_llmperf.core.atomic import write_json_atomic
from pytest_llmperf.core.redact import redact_env as _redact_env
from pytest_llmperf.core.versions import installed_vllm_version, package_version
from pytest_llmperf.plan.platforms import Accelerators, detect_accelerators
from pytest_llmperf.verdicts.baseline_records import (
    CaseFingerprintRecord,
    FingerprintRecord,
    convert,
)

ID_LENGTH: Final[int] = 16


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Everything that changes performance without changing the test. Unknown fields are None.

    ``workload`` is canonical JSON (sorted keys) so the record stays hashable and its id stable.
    """

    platform: str
    accelerator_model: str | None = None
    accelerator_count: int = 0
    driver: str | None = None
    runtime_version: str | None = None  # CUDA or ROCm
    vllm_version: str | None = None
    torch_version: str | None = None
    model_name: str | None = None
    model_revision: str | None = None
    weights_sha256: str | None = None
    launch_argv: tuple[str, ...] = ()
    launch_env: tuple[tuple[str, str], ...] = ()
    workload: str | None = None
    plugin_version: str | None = None
    host_cpu: str | None = None
    os_platform: str | None = None
    hostname: str | None = None
    cpu_layout: str | None = None  # which cores a local CPU server and the client ran on

    def __post_init__(self) -> None:
        if self.workload is not None:
            try:
                json.loads(self.workload)
            except ValueError:
                raise ValueError(
                    f"workload must be JSON text (see canonical_json), got {self.workload!r}"
                ) from None

    def to_record(self) -> FingerprintRecord:
        """The file record (``verdicts.baseline_records``): argv as a list, env and workload
        as objects."""
        return FingerprintRecord(**self._record_fields())

    def to_case_record(self) -> CaseFingerprintRecord:
        """The record of a case's fingerprint in a baseline file: only what is set is written.
        An empty workload (``{}``, ``[]``, ``0``) counts as not set, as the file format has
        always had it."""
        kw = self._record_fields()
        if kw["workload"] in ([], {}, 0):
            kw["workload"] = None
        return CaseFingerprintRecord(**kw)

    def _record_fields(self) -> dict[str, Any]:
        kw = {name: getattr(self, name) for name in FIELDS}
        kw["launch_argv"] = list(self.launch_argv)
        kw["launch_env"] = dict(self.launch_env)
        kw["workload"] = None if self.workload is None else json.loads(self.workload)
        return kw

    @classmethod
    def from_record(cls, record: FingerprintRecord) -> Fingerprint:
        """Inverse of ``to_record``: the environment sorted by name, the workload canonical."""
        kw = {name: getattr(record, name) for name in FIELDS}
        kw["launch_argv"] = tuple(record.launch_argv)
        kw["launch_env"] = tuple(sorted(record.launch_env.items()))
        kw["workload"] = None if record.workload is None else canonical_json(record.workload)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready and readable: argv as a list, env and workload as objects."""
        return cast("dict[str, Any]", msgspec.to_builtins(self.to_record()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        """Inverse of ``to_dict``. Raises ValueError (``RecordProblem``) naming the field, what
        is wrong and what it must hold; unknown keys (written by a newer plugin) are ignored so
        old readers still load the file."""
        value = dict(data) if isinstance(data, Mapping) else data
        return cls.from_record(convert(value, FingerprintRecord, root="fingerprint"))

    def key(self) -> dict[str, Any]:
        """The comparability key: every field but the context ones (``CONTEXT_FIELDS``), with
        the driver and the CUDA/ROCm runtime reduced to their major versions."""
        out = self.to_dict()
        for name in CONTEXT_FIELDS:
            out.pop(name, None)
        for name in MAJOR_FIELDS:
            out[name] = major_version(out[name])
        return out

    def id(self) -> str:
        """Stable short id: a prefix of the sha256 of the canonical JSON of the comparability
        key, so a new plugin, kernel or host name keeps the baseline's file name."""
        return hashlib.sha256(canonical_json(self.key()).encode()).hexdigest()[:ID_LENGTH]


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces (so equal workloads hash equally)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(Fingerprint))
#: Recorded and shown as "changed since baseline", never a reason for NOT COMPARABLE: the
#: plugin's own version, the kernel release (in ``os_platform``) and the host's name.
CONTEXT_FIELDS: Final[tuple[str, ...]] = ("plugin_version", "os_platform", "hostname")
#: Compared by major version only (the full version is context).
MAJOR_FIELDS: Final[tuple[str, ...]] = ("driver", "runtime_version")
KEY_FIELDS: Final[tuple[str, ...]] = tuple(f for f in FIELDS if f not in CONTEXT_FIELDS)
_MAJOR_RE: Final[re.Pattern[str]] = re.compile(r"\d+")


def major_version(version: Any) -> Any:
    """``"550.54.14"`` -> ``"550"``, ``"ROCm 6.3.1"`` -> ``"6"``; anything without a number
    (None, "unknown") is kept as it is."""
    if not isinstance(version, str):
        return version
    m = _MAJOR_RE.search(version)
    return m.group(0) if m else version


def _check_fields(names: Iterable[str]) -> set[str]:
    skip = set(names)
    unknown = skip - set(FIELDS)
    if unknown:
        raise ValueError(
            f"unknown fingerprint field(s) {', '.join(sorted(unknown))}; "
            f"known fields: {', '.join(FIELDS)}"
        )
    return skip


def diff(a: Fingerprint, b: Fingerprint, ignore: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
    """Comparability-key fields that differ, as ``{field: (a, b)}``, leaving out those the
    user declared ignorable (e.g. ``driver`` after a driver update known not to matter).
    Context fields never differ here (see ``context_diff``)."""
    skip = _check_fields(ignore)
    ka, kb = a.key(), b.key()
    da, db = a.to_dict(), b.to_dict()
    return {k: (da[k], db[k]) for k in KEY_FIELDS if k not in skip and ka[k] != kb[k]}


def context_diff(
    a: Fingerprint, b: Fingerprint, ignore: Iterable[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """What changed since the baseline without making it incomparable: the context fields, a
    driver/runtime update within the same major version, and the key fields the user allowed
    to differ (``ignore``)."""
    skip = _check_fields(ignore)
    da, db = a.to_dict(), b.to_dict()
    return {
        k: (da[k], db[k])
        for k in FIELDS
        if da[k] != db[k] and (k in CONTEXT_FIELDS or k in MAJOR_FIELDS or k in skip)
    }


# ----------------------------------------------------------------------------- gathering (I/O)


def redact_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Launch environment for the record, with secrets (tokens, keys) replaced: baselines are
    committed to repositories and uploaded as CI artifacts."""
    return tuple(sorted(_redact_env(env).items()))


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-llmperf" / "weights-sha256.json"


def weights_sha256(model_dir: str | os.PathLike[str], cache_path: Path | None = None) -> str | None:
    """sha256 over the model's ``*.safetensors`` files (name and content hash, sorted), or None
    when there are none. Hashing hundreds of GB takes minutes, so each file's hash is cached by
    (path, size, mtime) and recomputed only when the file changes."""
    root = Path(model_dir)
    files = sorted(root.rglob("*.safetensors"))
    if not files:
        return None
    cache_file = cache_path or default_cache_path()
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    total = hashlib.sha256()
    changed = False
    for path in files:
        st = path.stat()
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        digest = cache.get(key)
        if not isinstance(digest, str):
            digest = _hash_file(path)
            cache[key] = digest
            changed = True
        total.update(f"{path.relative_to(root).as_posix()}\0{digest}\n".encode())
    if changed:
        try:
            write_json_atomic(cache_file, cache)
        except OSError:
            pass  # a read-only home only costs the next run a re-hash
    return total.hexdigest()


def gather(
    *,
    model_name: str | None = None,
    model_revision: str | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    launch_argv: Iterable[str] = (),
    launch_env: Mapping[str, str] | None = None,
    workload: Any = None,
    accelerators: Accelerators | None = None,
    weights_cache: Path | None = None,
    vllm_version: str | None = None,
) -> Fingerprint:
    """Fingerprint of this host and the given launch. ``model_dir`` (local weights) adds a
    weights hash, which identifies a model better than a name when no revision is pinned.
    ``vllm_version`` is the version the server runs when that is not the installed one (an
    image or another venv as the launcher); by default the installed vLLM's."""
    acc = accelerators or detect_accelerators()
    return Fingerprint(
        platform=acc.platform,
        accelerator_model=acc.model,
        accelerator_count=acc.count,
        driver=acc.driver,
        runtime_version=acc.runtime_version,
        vllm_version=vllm_version or installed_vllm_version(),
        torch_version=package_version("torch"),
        model_name=model_name,
        model_revision=model_revision,
        weights_sha256=weights_sha256(model_dir, weights_cache) if model_dir else None,
        launch_argv=tuple(launch_argv),
        launch_env=redact_env(launch_env or {}),
        workload=None if workload is None else canonical_json(workload),
        plugin_version=__version__,
        host_cpu=acc.host_cpu if acc.platform == "cpu" else None,
        os_platform=_platform.platform(),
        hostname=_platform.node() or None,
    )
