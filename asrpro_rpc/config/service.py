"""The configuration service: one settings file shared by the host app and the sidecar.

``ConfigService.open`` loads ``<config_dir>/config.json`` (importing a legacy ``~/.asrpro/`` file or
upgrading an older schema first, with a backup; moving a corrupted file aside), ``set``/``reset`` validate
and write atomically under an inter-process lock, and ``watch`` picks up edits made by other programs.
Every change reaches the subscribers as ``(changed_keys, settings)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec

from .. import errors
from ..events import ConfigChanged, NotificationMessage, Notify
from . import file as store
from . import settings as schema
from .settings import CATEGORIES, SCHEMA_VERSION, SettingError, Settings

log = logging.getLogger(__name__)

CONFIG_FILE = store.CONFIG_FILE
LEGACY_FILE_NAMES = ("config.json", "settings.json")

ChangeCallback = Callable[[list[str], Settings], None]
WarningCallback = Callable[[NotificationMessage], None]


def default_legacy_dirs() -> list[Path]:
    """Where the desktop app kept its settings before the sidecar existed."""
    return [Path.home() / ".asrpro"]


@dataclass
class _Outcome:
    """What a change produced, delivered to subscribers after the file work is done."""

    changed: list[str] = field(default_factory=list)
    warnings: list[NotificationMessage] = field(default_factory=list)


def _errors_text(problems: list[SettingError]) -> str:
    return "; ".join(map(str, problems))


class ConfigService:
    """Settings in force, persisted in ``path``; thread-safe."""

    def __init__(self, config_dir: Path, *, lock_timeout_s: float = 10.0) -> None:
        self.path = config_dir / CONFIG_FILE
        self.lock_path = config_dir / f"{CONFIG_FILE}.lock"
        self.lock_timeout_s = lock_timeout_s
        self.warnings: list[NotificationMessage] = []
        """Warnings raised by ``open`` (recovery, migration, invalid values), to send once a host listens."""
        self.unwritable: str | None = None
        """Why the settings can't be saved (a read-only or full directory), until a save succeeds."""
        self._settings = Settings()
        self._document: dict[str, Any] = {}
        self._digest: str | None = None
        """SHA-256 of the file content ``_document`` came from (or was written as)."""
        self._signature: store.FileSignature | None = None
        self._rejected_digest: str | None = None
        self._mutex = threading.RLock()
        self._subscribers: list[ChangeCallback] = []
        self._warning_subscribers: list[WarningCallback] = []

    # --- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, config_dir: Path, *, legacy_dirs: Iterable[Path] = (), lock_timeout_s: float = 10.0
    ) -> ConfigService:
        """Load (migrating or recovering as needed) the settings in ``config_dir``, creating the file."""
        service = cls(config_dir, lock_timeout_s=lock_timeout_s)
        outcome = _Outcome()
        try:
            config_dir.mkdir(parents=True, exist_ok=True)
            with service._mutex, service._file_lock():
                for temp in store.remove_stale_temp_files(config_dir):
                    log.info("removed a temp file left by an interrupted write", extra={"path": str(temp)})
                service._load_initial(list(legacy_dirs), outcome)
        except (OSError, errors.Busy) as exc:  # keep the sidecar usable on what the file says
            reason = exc.message if isinstance(exc, errors.Busy) else f"{type(exc).__name__}: {exc}"
            service.unwritable = reason
            if service._signature is None:
                service._load_read_only(outcome)
            service._warn(
                outcome,
                "config_unavailable",
                f"The settings in {service.path} could not be saved ({reason}); the settings in the file "
                "are used, and changes can't be saved until this is fixed.",
            )
        service.warnings = outcome.warnings
        return service

    def _load_read_only(self, outcome: _Outcome) -> None:
        """Read the file without locking, writing or moving anything (the directory can't be written)."""
        try:
            found = store.read(self.path)
        except OSError:  # config_unavailable says so; defaults are used
            return
        if found is None:
            return
        data, signature = found
        self._signature = signature
        try:
            document = self._migrated(store.decode(data), outcome)
        except ValueError as exc:
            self._rejected_digest = store.digest(data)
            self._warn(
                outcome,
                "config_corrupt",
                f"The settings file {self.path} could not be read ({exc}); defaults are used.",
            )
            return
        self._settings, self._document = self._parsed(document, outcome), document
        self._digest = store.digest(data)

    def _load_initial(self, legacy_dirs: list[Path], outcome: _Outcome) -> None:
        found = store.read(self.path)
        document: dict[str, Any] = {}
        must_write = True
        if found is None:
            document = self._import_legacy(legacy_dirs, outcome)
        else:
            data, signature = found
            try:
                document = store.decode(data)
            except ValueError as exc:
                self._recover_corrupt(str(exc), outcome, instead="the default settings are in use")
            else:
                must_write = self._upgrade_in_place(document, outcome)
                document = self._migrated(document, outcome)
                self._digest, self._signature = store.digest(data), signature
        settings = self._parsed(document, outcome)
        self._settings, self._document = settings, document
        if must_write:
            self._write(schema.to_document(settings, document), None)

    def _parsed(self, document: dict[str, Any], outcome: _Outcome) -> Settings:
        """The settings ``document`` holds, defaults for invalid values (one warning names them all)."""
        settings, problems = schema.parse_document(document)
        if problems:
            self._warn(
                outcome,
                "config_invalid",
                f"Some settings in {self.path} are invalid and the defaults are used for them: "
                f"{_errors_text(problems)}. Fix them with config.set or by editing the file.",
            )
        return settings

    def _migrated(self, document: dict[str, Any], outcome: _Outcome) -> dict[str, Any]:
        try:
            return schema.migrate(document)
        except ValueError as exc:  # an unreadable schema_version: read the rest as the current layout
            self._warn(
                outcome, "config_invalid", f"{self.path}: {exc}; it is read as schema {SCHEMA_VERSION}."
            )
            return {**document, "schema_version": SCHEMA_VERSION}

    def _upgrade_in_place(self, document: dict[str, Any], outcome: _Outcome) -> bool:
        """Back up a file with an older schema before it is rewritten; True if it must be rewritten."""
        try:
            version = schema.schema_version_of(document)
        except ValueError:
            return False
        if version >= SCHEMA_VERSION:
            return False
        backup = store.back_up(self.path, self.path.with_name(f"{CONFIG_FILE}.v{version}.bak"))
        self._warn(
            outcome,
            "config_migrated",
            f"Settings were upgraded from schema {version} to {SCHEMA_VERSION}; "
            f"the old file is kept at {backup}.",
            level="info",
        )
        return True

    def _import_legacy(self, legacy_dirs: list[Path], outcome: _Outcome) -> dict[str, Any]:
        """The first legacy file's settings, upgraded, with a backup beside the new file; else ``{}``."""
        legacy = self._find_legacy(legacy_dirs)
        if legacy is None:
            return {}
        try:
            document = store.decode(legacy.read_bytes())
        except (ValueError, OSError) as exc:
            self._warn(
                outcome,
                "config_corrupt",
                f"Old settings in {legacy} could not be imported ({exc}); defaults are used.",
            )
            return {}
        backup = store.back_up(legacy, self.path.with_name(f"{CONFIG_FILE}.legacy.bak"))
        self._warn(
            outcome,
            "config_migrated",
            f"Settings were imported from {legacy}; a copy of that file is kept at {backup}.",
            level="info",
        )
        return self._migrated(document, outcome)

    def _find_legacy(self, legacy_dirs: list[Path]) -> Path | None:
        here = self.path.parent.resolve()
        for directory in legacy_dirs:
            if directory.resolve() == here:
                continue
            for name in LEGACY_FILE_NAMES:
                if (directory / name).is_file():
                    return directory / name
        return None

    def _recover_corrupt(self, reason: str, outcome: _Outcome, *, instead: str) -> None:
        backup = store.move_aside(self.path, f"corrupt-{store.timestamp()}")
        self._warn(
            outcome,
            "config_corrupt",
            f"The settings file {self.path} could not be read ({reason}). "
            f"It was moved to {backup}; {instead}.",
        )
        self._digest = self._signature = None

    # --- reading -----------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The settings in force (an immutable snapshot)."""
        return self._settings

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(changed_keys, settings)`` after every change; returns an unsubscribe function.

        Callbacks run in the thread that made the change: the event loop for ``watch``, ``aset`` and
        ``areset``; the caller's thread for ``set`` and ``reset``. Keep them short; errors are logged.
        """
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def subscribe_warnings(self, callback: WarningCallback) -> Callable[[], None]:
        """Call ``callback(notification)`` for each later warning (rejected external edit, recovery)."""
        self._warning_subscribers.append(callback)
        return lambda: self._warning_subscribers.remove(callback)

    # --- changing ----------------------------------------------------------------------------------
    def set(self, values: Mapping[str, Mapping[str, Any]]) -> Settings:
        """Apply a partial update ``{category: {key: value}}``, all or nothing; blocking (file lock, fsync).

        Raises ``errors.InvalidConfig`` (``data.errors``: ``[{path, message}]``) and changes nothing if any
        value is invalid; ``errors.Busy`` if the file stays locked by another program.
        """
        return self._deliver(self._commit(lambda current: self._updated(current, values)))

    def reset(self, category: str | None = None) -> Settings:
        """Restore one category (or every one) to its defaults; keys from newer versions are kept."""
        self._check_category(category)
        return self._deliver(self._commit(lambda current: schema.reset(current, category)))

    async def aset(self, values: Mapping[str, Mapping[str, Any]]) -> Settings:
        """``set`` with the file work in a worker thread; subscribers run in the event loop."""
        outcome = await anyio.to_thread.run_sync(self._commit, lambda current: self._updated(current, values))
        return self._deliver(outcome)

    async def areset(self, category: str | None = None) -> Settings:
        """``reset`` with the file work in a worker thread; subscribers run in the event loop."""
        self._check_category(category)
        outcome = await anyio.to_thread.run_sync(
            self._commit, lambda current: schema.reset(current, category)
        )
        return self._deliver(outcome)

    @staticmethod
    def _check_category(category: str | None) -> None:
        if category is not None and category not in CATEGORIES:
            raise errors.InvalidConfig(
                f"Unknown settings category {category!r} (known: {', '.join(CATEGORIES)}).",
                errors=[{"path": category, "message": "unknown settings category"}],
            )

    @staticmethod
    def _updated(current: Settings, values: Mapping[str, Mapping[str, Any]]) -> Settings:
        if not isinstance(values, Mapping):
            raise errors.InvalidConfig("Settings values must be an object of {category: {key: value}}.")
        updated, problems = schema.apply_update(current, values)
        if problems:
            raise errors.InvalidConfig(
                f"Invalid settings: {_errors_text(problems)}",
                path=problems[0].path,
                errors=[msgspec.to_builtins(p) for p in problems],
            )
        return updated

    def _commit(self, change: Callable[[Settings], Settings]) -> _Outcome:
        """Read-modify-write under the lock, starting from what is on disk now (another writer's edits)."""
        outcome = _Outcome()
        try:
            with self._mutex, self._file_lock():
                old = self._settings
                found = store.read(self.path)
                current, document = self._on_disk(found, outcome)
                new = change(current)
                self._write(schema.to_document(new, document), found)
                self._settings = new
                outcome.changed = schema.changed_keys(old, new)
        except OSError as exc:  # the settings in force stay; system.health says why they can't be saved
            self.unwritable = f"{type(exc).__name__}: {exc}"
            raise
        self.unwritable = None
        return outcome

    def _on_disk(
        self, found: tuple[bytes, store.FileSignature] | None, outcome: _Outcome
    ) -> tuple[Settings, dict[str, Any]]:
        """The file's settings and document if another program changed it; else the ones in memory.

        A corrupted file is moved aside (it is about to be replaced); invalid values keep the values in
        force.
        """
        if found is None or store.digest(found[0]) == self._digest:
            return self._settings, self._document
        try:
            document = schema.migrate(store.decode(found[0]))
        except ValueError as exc:
            self._recover_corrupt(str(exc), outcome, instead="the settings in force were saved in its place")
            return self._settings, self._document
        settings, problems = schema.parse_document(document, base=self._settings)
        if problems:
            self._warn(
                outcome,
                "config_invalid",
                f"Invalid values in {self.path} were not applied: {_errors_text(problems)}.",
            )
        return settings, document

    def _write(self, document: dict[str, Any], found: tuple[bytes, store.FileSignature] | None) -> None:
        data = store.encode(document)
        signature = (
            found[1] if found is not None and found[0] == data else store.atomic_write(self.path, data)
        )
        self._document, self._digest, self._signature = document, store.digest(data), signature

    def _file_lock(self) -> Any:
        return store.exclusive_lock(self.lock_path, timeout_s=self.lock_timeout_s)

    # --- hot reload --------------------------------------------------------------------------------
    def reload(self) -> list[str]:
        """Apply an edit made by another program; return the changed keys.

        An edit that doesn't parse or holds invalid values is rejected as a whole, with one warning per
        distinct content; the settings in force stay.
        """
        if not self._mutex.acquire(blocking=False):
            return []  # a write is in progress here; the next poll looks again
        try:
            outcome = self._reload()
        finally:
            self._mutex.release()
        self._deliver(outcome)
        return outcome.changed

    def _reload(self) -> _Outcome:
        outcome = _Outcome()
        found = store.read(self.path)
        if found is None:
            self._signature = None
            return outcome
        data, self._signature = found
        content_digest = store.digest(data)
        if content_digest in (self._digest, self._rejected_digest):
            return outcome
        try:
            document = schema.migrate(store.decode(data))
            settings, problems = schema.parse_document(document)
            if problems:
                raise ValueError(_errors_text(problems))
        except ValueError as exc:
            self._rejected_digest = content_digest
            self._warn(
                outcome,
                "config_rejected",
                f"The edit to {self.path} was not applied ({exc}); the previous settings stay in force.",
            )
            return outcome
        old, self._settings = self._settings, settings
        self._document, self._digest = document, content_digest
        outcome.changed = schema.changed_keys(old, settings)
        log.info("settings reloaded from the file", extra={"changed": outcome.changed})
        return outcome

    async def watch(self, *, poll_interval_s: float = 0.5, settle_s: float = 0.1) -> None:
        """Poll the file (inode, size, mtime) and reload it when another program changes it; runs forever.

        A burst of writes is coalesced: the file is read once it has been unchanged for ``settle_s``.
        Our own writes are recognised by their content hash and ignored.
        """
        while True:
            await anyio.sleep(poll_interval_s)
            signature = store.current_signature(self.path)
            if signature == self._signature:
                continue
            while True:
                await anyio.sleep(settle_s)
                latest = store.current_signature(self.path)
                if latest == signature:
                    break
                signature = latest
            self.reload()

    # --- delivery ----------------------------------------------------------------------------------
    def _warn(self, outcome: _Outcome, kind: str, message: str, *, level: str = "warning") -> None:
        log.log(logging.INFO if level == "info" else logging.WARNING, message, extra={"kind": kind})
        outcome.warnings.append(NotificationMessage(level=level, message=message, kind=kind))  # type: ignore[arg-type]

    def _deliver(self, outcome: _Outcome) -> Settings:
        """Tell the subscribers; the settings they get are the latest, whatever order changes finish in."""
        for warning in outcome.warnings:
            for warning_callback in list(self._warning_subscribers):
                self._call(warning_callback, warning)
        settings = self._settings
        if outcome.changed:
            for callback in list(self._subscribers):
                self._call(callback, outcome.changed, settings)
        return settings

    @staticmethod
    def _call(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # a broken subscriber must not undo or block a saved change
            log.exception("settings subscriber failed", extra={"callback": repr(callback)})


def announce_changes(notify: Notify) -> ChangeCallback:
    """A ConfigService subscriber sending ``config.changed`` through ``notify`` (the container's fan-out)."""

    def announce(changed_keys: list[str], settings: Settings) -> None:
        notify("config.changed", ConfigChanged(keys=changed_keys))

    return announce
