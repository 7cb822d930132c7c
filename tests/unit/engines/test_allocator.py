"""The engine process's malloc policy: the mmap threshold follows the workload, files win."""

from __future__ import annotations

import pytest

from asrpro_rpc.engines.host import allocator
from asrpro_rpc.engines.host.allocator import FILE_MMAP_THRESHOLD, STREAM_MMAP_THRESHOLD, AllocatorPolicy


class _RecordingLibc:
    """Stands in for glibc so that the test process's own allocator is left as it is."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.trims = 0

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> _RecordingLibc:
    fake = _RecordingLibc()
    monkeypatch.setattr(allocator, "_libc", lambda: fake)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(FILE_MMAP_THRESHOLD))
    return fake


def _thresholds(libc: _RecordingLibc) -> list[int]:
    return [value for parameter, value in libc.calls if parameter == -3]


def test_stream_decodes_raise_the_threshold_only_while_no_file_runs(libc: _RecordingLibc) -> None:
    policy = AllocatorPolicy()
    policy.started(file=False)
    policy.finished(file=False)
    policy.started(file=True)
    policy.started(file=False)  # beside a file: the file's threshold stays
    policy.finished(file=False)
    policy.finished(file=True)
    policy.started(file=False)
    assert _thresholds(libc) == [STREAM_MMAP_THRESHOLD, FILE_MMAP_THRESHOLD, STREAM_MMAP_THRESHOLD]
    assert libc.trims == 1  # after the file only


def test_a_threshold_from_the_environment_is_left_alone(
    libc: _RecordingLibc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    policy = AllocatorPolicy()
    policy.started(file=False)
    policy.started(file=True)
    policy.finished(file=True)
    assert libc.calls == [] and libc.trims == 1
