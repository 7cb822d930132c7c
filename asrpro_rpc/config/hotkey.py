"""The accelerator grammar of ``hotkey.combination``: modifiers and one key joined by ``+``.

Electron's and Tauri's names, case-insensitive; some modifiers exist on one platform only (``Command``
and ``Option`` on macOS, ``AltGr`` elsewhere). The host registers the shortcut; the sidecar checks it.
"""

from __future__ import annotations

import sys

_EVERYWHERE = ("linux", "darwin", "win32")
MODIFIERS: dict[str, tuple[str, ...]] = {
    "CommandOrControl": _EVERYWHERE,
    "CmdOrCtrl": _EVERYWHERE,
    "Control": _EVERYWHERE,
    "Ctrl": _EVERYWHERE,
    "Alt": _EVERYWHERE,
    "Shift": _EVERYWHERE,
    "Super": _EVERYWHERE,
    "Meta": _EVERYWHERE,
    "AltGr": ("linux", "win32"),
    "Command": ("darwin",),
    "Cmd": ("darwin",),
    "Option": ("darwin",),
}
"""Accelerator modifiers and the platforms that have them (Electron's names; case does not matter)."""
_SAME_MODIFIER = {"ctrl": "control", "cmd": "command", "cmdorctrl": "commandorcontrol", "meta": "super"}
_SOLO_KEYS = tuple(f"F{n}" for n in range(1, 25)) + (
    "MediaPlayPause", "MediaNextTrack", "MediaPreviousTrack", "MediaStop",
    "VolumeUp", "VolumeDown", "VolumeMute",
)  # fmt: skip
"""Keys that may be a shortcut on their own: pressing them types nothing."""
_NAMED_KEYS = (
    "Space", "Tab", "Return", "Enter", "Escape", "Esc", "Backspace", "Delete", "Insert", "Home", "End",
    "PageUp", "PageDown", "Up", "Down", "Left", "Right", "Plus", "Capslock", "Numlock", "Scrolllock",
    "PrintScreen",
)  # fmt: skip
_NUMPAD_KEYS = tuple(f"num{n}" for n in range(10)) + ("numdec", "numadd", "numsub", "nummult", "numdiv")
_PUNCTUATION = ")!@#$%^&*(:;=<,_->.?/~`{}[]|\\'\""
KEYS: frozenset[str] = frozenset(
    k.casefold()
    for k in (
        *"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        *_PUNCTUATION,
        *_SOLO_KEYS,
        *_NAMED_KEYS,
        *_NUMPAD_KEYS,
    )
)
_PLATFORM_NAMES = {"linux": "Linux", "darwin": "macOS", "win32": "Windows"}


def _platform(platform: str | None) -> str:
    """``platform`` (default: this one) as a key of ``_PLATFORM_NAMES``; other Unixes count as Linux."""
    platform = sys.platform if platform is None else platform
    return platform if platform in _PLATFORM_NAMES else "linux"


def hotkey_grammar(platform: str | None = None) -> str:
    """What a combination may be made of on ``platform``, for a person."""
    platform = _platform(platform)
    modifiers = ", ".join(name for name, where in MODIFIERS.items() if platform in where)
    return (
        f"modifiers on {_PLATFORM_NAMES[platform]}: {modifiers}; keys: A-Z, 0-9, F1-F24, "
        f"{', '.join(_NAMED_KEYS)}, {', '.join(_SOLO_KEYS[24:])}, num0-num9, numdec, numadd, numsub, "
        f"nummult, numdiv, or one of {_PUNCTUATION}"
    )


def hotkey_problem(combination: str, platform: str | None = None) -> str | None:
    """Why ``combination`` is not "modifiers + one key" on ``platform`` (None when it is)."""
    platform = _platform(platform)
    modifiers = {name.casefold(): (name, where) for name, where in MODIFIERS.items()}
    parts = combination.split("+")
    if any(not part.strip() for part in parts):
        return "an empty part (write + as Plus)"
    *heads, key = (part.strip() for part in parts)
    seen: set[str] = set()
    for part in heads:
        name, where = modifiers.get(part.casefold(), (None, ()))
        if name is None:
            if part.casefold() in KEYS:
                return f"{part!r} is a key: a combination has one key, at the end"
            return f"{part!r} is not a modifier"
        if platform not in where:
            names = " or ".join(_PLATFORM_NAMES[p] for p in where)
            return f"{name} is a {names} modifier, not one on {_PLATFORM_NAMES[platform]}"
        canonical = _SAME_MODIFIER.get(name.casefold(), name.casefold())
        if canonical in seen:
            return f"{name} repeats a modifier"
        seen.add(canonical)
    if key.casefold() in modifiers:
        return f"it ends with the modifier {key!r}, not a key"
    if key.casefold() not in KEYS:
        return f"{key!r} is not a key"
    if not heads and key.casefold() not in {k.casefold() for k in _SOLO_KEYS}:
        return f"{key!r} needs a modifier (only F1-F24 and media keys work alone)"
    return None
