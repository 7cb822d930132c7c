"""Typed settings: one frozen Struct per category, defaults, constraints, validation with readable paths.

The settings file is a JSON object ``{"schema_version": N, "<category>": {"<key>": value}}``. Loading is
lenient (an invalid value falls back and is reported as ``audio.sample_rate_hz: must be one of …``; the
rest is kept); updates are strict and all-or-nothing. Keys this version doesn't know (written by a newer
version) are carried through ``to_document`` untouched. Older layouts are upgraded by ``migrate``.
``hotkey.combination`` is checked against the accelerator grammar (``hotkey.py``).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from ..system import paths
from ..transcripts.vocabulary import Replacements, Vocabulary, VocabularyWords
from .hotkey import hotkey_grammar, hotkey_problem

SCHEMA_VERSION = 1
"""Version of the file layout written by this code; ``migrate`` upgrades anything older."""

Category = Literal["device", "server", "ui", "audio", "model", "hotkey", "vocabulary"]
DeviceName = Literal["auto", "cpu", "cuda", "mps", "rocm", "directml", "coreml", "webgpu", "openvino", "mlx"]
"""Where a model runs: ``device.preferred``, or ``models.load``'s per-load ``device``."""
ComputeType = Literal[
    "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32"
]


class DeviceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where inference runs."""

    preferred: DeviceName = "auto"
    """``auto`` picks CUDA, then Apple MPS, then CPU. The ONNX route also takes ONNX Runtime's providers
    (rocm, directml, coreml and the plugin EPs webgpu, openvino, mlx); other engines run those on the CPU."""
    cuda_index: Annotated[int, msgspec.Meta(ge=0, le=63)] = 0
    compute_type: ComputeType | None = None
    """CTranslate2 compute type; ``None`` picks the best one for the device."""
    cpu_threads: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 0
    """Threads per transcription; 0: Whisper shares the cores among ``max_concurrent_transcriptions``
    (on 2 cores one thread each), other engines use every core."""
    max_concurrent_transcriptions: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The optional OpenAI-compatible HTTP shim."""

    http_enabled: bool = False
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8765
    auto_start: bool = False
    """Start the shim with the sidecar (when ``http_enabled``)."""
    api_token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    """Bearer token HTTP clients must send; ``None`` means no authentication."""
    max_upload_mb: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 25
    header_timeout_s: Annotated[float, msgspec.Meta(ge=0.5, le=3600)] = 10.0
    """A connection must send a complete request head within this (slow or idle clients are closed)."""
    body_timeout_s: Annotated[float, msgspec.Meta(ge=0.5, le=3600)] = 30.0
    """A request body may pause at most this long between chunks."""
    max_connections_per_client: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 64
    """Beyond this, a client's new connection closes its oldest idle one (refused if none is idle)."""


class UiSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Look of the host's windows: the host's to apply (stored, validated and announced here)."""

    theme: Literal["system", "light", "dark"] = "system"
    opacity: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    animations: bool = True


class AudioSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The microphone: read when a recording or microphone stream starts (request params win)."""

    sample_rate_hz: Literal[8000, 16000, 22050, 24000, 32000, 44100, 48000] = 16000
    """The rate the device is captured at, and a recording's file rate (streams decode at 16 kHz)."""
    channels: Annotated[int, msgspec.Meta(ge=1, le=2)] = 1
    """Channels captured, and a recording's file channels (streams mix them to mono)."""
    format: Literal["pcm16", "float32"] = "pcm16"
    """A recording's WAV sample format."""
    quality: Literal["low", "medium", "high"] = "high"
    """The resampler's filter whenever the sidecar converts rates (``high``: the least aliasing)."""
    input_device: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None
    """Input device id or name (``audio.devices``); ``None`` uses the system default."""


SELECTED = "selected"
"""An alias's target meaning "the currently selected model"."""
DEFAULT_ALIASES: dict[str, str] = {
    "whisper-1": SELECTED,
    "gpt-4o-transcribe": SELECTED,
    "gpt-4o-mini-transcribe": SELECTED,
}
"""OpenAI's model names (those its examples send) → the model they run here (``model.aliases``)."""
AliasName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ModelSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which model runs and how long it stays in memory."""

    selected_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "whisper-base"
    auto_unload: bool = True
    auto_unload_timeout_s: Annotated[float, msgspec.Meta(ge=0, le=7 * 24 * 3600)] = 300.0
    """Idle time before the model is unloaded (0 = right after each request)."""
    prefer_gpu: bool = True
    max_audio_duration_s: Annotated[float, msgspec.Meta(ge=1, le=7 * 24 * 3600)] = 12 * 3600.0
    """Longest audio one file transcription may hold (longer files are refused, ``too_long``). Memory no
    longer grows with length, so this bounds time: 12 h covers a long recording day, and a mislabelled or
    hostile file can't hold the engine for days (10 h of silence is 20 MB of FLAC)."""
    cache_directory: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    """Where models are stored; ``None`` is the platform cache dir (see ``cache_path``)."""
    aliases: Annotated[dict[AliasName, AliasName], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_ALIASES)
    )
    """Model names OpenAI clients send → the model they run: ``selected`` (the selected model) or an id."""

    def cache_path(self) -> Path:
        """The model cache directory in force: ``cache_directory`` or the platform default."""
        return Path(self.cache_directory).expanduser() if self.cache_directory else paths.models_dir()


class HotkeySettings(msgspec.Struct, frozen=True, kw_only=True):
    """The host's global dictation shortcut: the host's to apply (stored, validated and announced here)."""

    combination: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "CommandOrControl+Shift+Space"
    """An accelerator (Electron/Tauri syntax): modifiers and one key joined by ``+``."""
    overlay: bool = True
    auto_paste: bool = True


class VocabularySettings(msgspec.Struct, frozen=True, kw_only=True):
    """The user's dictionary, for files, streams, recordings and the HTTP shim (a request's
    ``vocabulary`` overrides it field by field)."""

    words: VocabularyWords = msgspec.field(default_factory=list)
    """Names and jargon to spell as written (Whisper decodes with them as hints, NeMo boosts them)."""
    replacements: Replacements = msgspec.field(default_factory=dict)
    """Spoken → written (``{"gee pee tee four": "GPT-4"}``): case-insensitive, whole words, every engine."""
    remove_fillers: bool = False
    """Drop filler words (um, uh, erm, hmm)."""
    spoken_punctuation: bool = False
    """Turn spoken "comma", "period", "question mark", "new line", "new paragraph"… into the marks."""

    def as_vocabulary(self) -> Vocabulary:
        return Vocabulary(**msgspec.structs.asdict(self))


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting, by category."""

    device: DeviceSettings = msgspec.field(default_factory=DeviceSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    ui: UiSettings = msgspec.field(default_factory=UiSettings)
    audio: AudioSettings = msgspec.field(default_factory=AudioSettings)
    model: ModelSettings = msgspec.field(default_factory=ModelSettings)
    hotkey: HotkeySettings = msgspec.field(default_factory=HotkeySettings)
    vocabulary: VocabularySettings = msgspec.field(default_factory=VocabularySettings)


CATEGORIES: dict[str, type[msgspec.Struct]] = {
    "device": DeviceSettings,
    "server": ServerSettings,
    "ui": UiSettings,
    "audio": AudioSettings,
    "model": ModelSettings,
    "hotkey": HotkeySettings,
    "vocabulary": VocabularySettings,
}
assert tuple(CATEGORIES) == typing.get_args(Category) == Settings.__struct_fields__


class SettingError(msgspec.Struct, frozen=True):
    """One invalid value: ``path`` is ``category.key``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _check_hotkey(combination: str) -> str | None:
    problem = hotkey_problem(combination)
    if problem is None:
        return None
    example = '"CommandOrControl+Shift+Space"'
    return f"must be modifiers and one key joined by + (e.g. {example}): {problem}; {hotkey_grammar()}"


_CHECKS: dict[tuple[str, str], Callable[[Any], str | None]] = {("hotkey", "combination"): _check_hotkey}
"""Rules beyond the type: (category, key) → the message for a bad value, or None."""


# --- validation ------------------------------------------------------------------------------------
def _describe(info: msgspec.inspect.Type) -> str:
    """What a value of this type must be, for a person (``"an integer between 1 and 65535"``)."""
    if isinstance(info, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(msgspec.json.encode(v).decode() for v in info.values)
    if isinstance(info, msgspec.inspect.UnionType):
        parts = [_describe(t) for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return " or ".join(parts) + (" or null" if info.includes_none else "")
    if isinstance(info, msgspec.inspect.BoolType):
        return "true or false"
    if isinstance(info, msgspec.inspect.StrType):
        kind = "a non-empty string" if info.min_length else "a string"
        return kind + (f" of at most {info.max_length} characters" if info.max_length else "")
    if isinstance(info, (msgspec.inspect.IntType, msgspec.inspect.FloatType)):
        kind = "an integer" if isinstance(info, msgspec.inspect.IntType) else "a number"
        if info.ge is not None and info.le is not None:
            return f"{kind} between {info.ge:g} and {info.le:g}"
        if info.ge is not None:
            return f"{kind} >= {info.ge:g}"
        return kind
    if isinstance(info, msgspec.inspect.ListType):
        most = f" (at most {info.max_length})" if info.max_length else ""
        return f"a list{most} of items, each {_describe(info.item_type)}"
    if isinstance(info, msgspec.inspect.DictType):
        most = f" (at most {info.max_length} entries)" if info.max_length else ""
        return f"an object{most}, keys {_describe(info.key_type)}, values {_describe(info.value_type)}"
    return type(info).__name__.removesuffix("Type").lower()


def _field_table(cls: type[msgspec.Struct]) -> dict[str, tuple[Any, str]]:
    """Field name → (annotated type, description of valid values)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.name: (hints[f.name], _describe(f.type)) for f in info.fields}


_FIELDS: dict[str, dict[str, tuple[Any, str]]] = {name: _field_table(cls) for name, cls in CATEGORIES.items()}


def _show(value: Any) -> str:
    text = msgspec.json.encode(value).decode() if _is_json(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_json(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return False
    return True


def _check(category: str, key: str, value: Any) -> tuple[Any, SettingError | None]:
    """Validate one value: (converted value, None) or (None, the error)."""
    field_type, valid = _FIELDS[category][key]
    try:
        converted = msgspec.convert(value, field_type)
    except msgspec.ValidationError:
        return None, SettingError(f"{category}.{key}", f"must be {valid} (got {_show(value)})")
    check = _CHECKS.get((category, key))
    problem = check(converted) if check is not None else None
    if problem is not None:
        return None, SettingError(f"{category}.{key}", f"{problem} (got {_show(value)})")
    return converted, None


def merge_category(
    category: str, raw: Any, base: msgspec.Struct, *, strict: bool
) -> tuple[msgspec.Struct, list[SettingError]]:
    """Apply ``raw`` (a JSON object of key → value) over ``base``.

    Invalid values keep ``base``'s value and are reported. Unknown keys are ignored when loading a file
    (``strict=False``: they belong to a newer version) and reported when ``strict`` (an update's typo).
    """
    if not isinstance(raw, Mapping):
        return base, [SettingError(category, f"must be an object (got {_show(raw)})")]
    known = _FIELDS[category]
    updates: dict[str, Any] = {}
    errors: list[SettingError] = []
    for key, value in raw.items():
        if key not in known:
            if strict:
                names = ", ".join(known)
                errors.append(SettingError(f"{category}.{key}", f"unknown setting (known: {names})"))
            continue
        converted, error = _check(category, key, value)
        if error is None:
            updates[key] = converted
        else:
            errors.append(error)
    return msgspec.structs.replace(base, **updates), errors


def parse_document(
    document: Mapping[str, Any], base: Settings | None = None
) -> tuple[Settings, list[SettingError]]:
    """Lenient load of a (migrated) document over ``base`` (defaults if None): every problem is reported."""
    settings = base or Settings()
    errors: list[SettingError] = []
    for category in CATEGORIES:
        if category in document:
            merged, problems = merge_category(
                category, document[category], getattr(settings, category), strict=False
            )
            settings = msgspec.structs.replace(settings, **{category: merged})
            errors += problems
    return settings, errors


def apply_update(settings: Settings, values: Mapping[str, Any]) -> tuple[Settings, list[SettingError]]:
    """Strict partial update ``{category: {key: value}}``; the caller rejects it all if errors come back."""
    errors: list[SettingError] = []
    for category, raw in values.items():
        if category not in CATEGORIES:
            names = ", ".join(CATEGORIES)
            errors.append(SettingError(str(category), f"unknown settings category (known: {names})"))
            continue
        merged, problems = merge_category(category, raw, getattr(settings, category), strict=True)
        settings = msgspec.structs.replace(settings, **{category: merged})
        errors += problems
    return settings, errors


def reset(settings: Settings, category: str | None = None) -> Settings:
    """``settings`` with one category (or all, if None) back to defaults."""
    if category is None:
        return Settings()
    if category not in CATEGORIES:
        raise ValueError(f"unknown settings category {category!r}")
    return msgspec.structs.replace(settings, **{category: CATEGORIES[category]()})


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """Dotted paths (``model.auto_unload_timeout_s``) whose values differ, in declaration order."""
    keys: list[str] = []
    for category in CATEGORIES:
        before, after = getattr(old, category), getattr(new, category)
        if before != after:
            keys += [
                f"{category}.{key}"
                for key in before.__struct_fields__
                if getattr(before, key) != getattr(after, key)
            ]
    return keys


def to_document(settings: Settings, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document for ``settings``, keeping ``previous``'s unknown keys (categories and fields).

    A ``schema_version`` newer than ours is kept, so a newer version doesn't migrate its own file again.
    """
    previous = previous or {}
    version = previous.get("schema_version")
    keep_version = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
    document: dict[str, Any] = {"schema_version": version if keep_version else SCHEMA_VERSION}
    values = msgspec.to_builtins(settings)
    for category in CATEGORIES:
        old = previous.get(category)
        extras = (
            {k: v for k, v in old.items() if k not in _FIELDS[category]} if isinstance(old, Mapping) else {}
        )
        document[category] = {**values[category], **extras}
    document.update({k: v for k, v in previous.items() if k not in document})
    return document


# --- migrations ------------------------------------------------------------------------------------
_V0_RENAMES: dict[tuple[str, str], str] = {
    ("audio", "sample_rate"): "sample_rate_hz",
    ("device", "device"): "preferred",
    ("device", "compute"): "compute_type",
    ("model", "selected_model"): "selected_id",
    ("model", "auto_unload_enabled"): "auto_unload",
    ("model", "auto_unload_minutes"): "auto_unload_timeout_s",
    ("server", "enabled"): "http_enabled",
    ("server", "api_key"): "api_token",
    ("server", "max_upload_size_mb"): "max_upload_mb",
    ("hotkey", "shortcut"): "combination",
    ("ui", "show_animations"): "animations",
}
"""Schema 0 (the desktop app's ``~/.asrpro/config.json``, no ``schema_version``) → 1: renamed keys."""


def _minutes_to_s(value: Any) -> Any:
    return value * 60 if isinstance(value, (int, float)) and not isinstance(value, bool) else value


_V0_CONVERSIONS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("model", "auto_unload_minutes"): _minutes_to_s
}


def _v0_to_v1(document: dict[str, Any]) -> dict[str, Any]:
    upgraded: dict[str, Any] = {}
    for category, section in document.items():
        if not isinstance(section, Mapping):
            upgraded[category] = section
            continue
        renamed: dict[str, Any] = {}
        for key, value in section.items():
            new_key = _V0_RENAMES.get((category, str(key)), str(key))
            if new_key != key and new_key in section:
                continue  # both spellings present: the new one wins
            convert = _V0_CONVERSIONS.get((category, key))
            renamed[new_key] = convert(value) if convert else value
        upgraded[category] = renamed
    return upgraded


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _v0_to_v1}
"""``MIGRATIONS[n]`` turns a schema-``n`` document into a schema-``n+1`` one (without ``schema_version``)."""


def schema_version_of(document: Mapping[str, Any]) -> int:
    """The document's ``schema_version``: 0 when absent (the legacy layout)."""
    version = document.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"schema_version must be a non-negative integer (got {_show(version)})")
    return version


def migrate(document: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade a document to ``SCHEMA_VERSION``; idempotent (current or newer documents come back as is)."""
    version = schema_version_of(document)
    upgraded = {k: v for k, v in document.items() if k != "schema_version"}
    if version >= SCHEMA_VERSION:
        return dict(document)
    while version < SCHEMA_VERSION:
        upgraded = MIGRATIONS[version](upgraded)
        version += 1
    return {"schema_version": version, **upgraded}
