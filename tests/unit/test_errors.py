"""The error taxonomy's bounds: echoed input is clipped, OS refusals map to stable kinds."""

from __future__ import annotations

import errno

from asrpro_rpc import errors
from asrpro_rpc.services.system import LAST_ERROR_CHARS, SystemService


def test_messages_and_data_are_clipped_whatever_they_echo() -> None:
    huge = "x" * (5 << 20)
    error = errors.ModelNotFound(f"Unknown model {huge}.", model_id=huge, suggestions=[huge])
    assert len(error.message) <= errors.MAX_MESSAGE_CHARS
    assert error.message.endswith("x.") and "characters left out" in error.message
    assert len(error.data["model_id"]) <= errors.MAX_DATA_CHARS
    assert len(error.data["suggestions"][0]) <= errors.MAX_DATA_CHARS
    assert len(errors.shown(huge)) <= errors.MAX_SHOWN_CHARS


def test_os_errors_map_to_stable_kinds() -> None:
    def kind(code: int) -> str:
        return errors.error_for(OSError(code, "x", "/some/file")).kind

    assert kind(errno.ENOSPC) == kind(errno.EFBIG) == kind(errno.EDQUOT) == "disk_full"
    assert kind(errno.EROFS) == kind(errno.EACCES) == "permission_denied"
    assert kind(errno.ENAMETOOLONG) == "invalid_params"
    assert errors.error_for(OSError(errno.ENOSPC, "x", "/f")).data["resource"] == "disk"


def test_health_keeps_the_last_error_small(tmp_path) -> None:  # type: ignore[no-untyped-def]
    system = SystemService(models_dir=tmp_path, engine_status=lambda: None, notify=lambda *_: None)  # type: ignore[arg-type, return-value]
    system.record_error("internal_error", "y" * 1_000_000)
    last = system._last_error
    assert last is not None and len(last.message) <= LAST_ERROR_CHARS
