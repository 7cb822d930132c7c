"""Shared fixtures and helpers live in tests/support/ (the fixture modules are pytest plugins)."""

from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: a busy 2-core CI machine must not fail them on timing.
settings.register_profile("asrpro", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("asrpro")

pytest_plugins = [
    "tests.support.audio",
    "tests.support.models",
    "tests.support.parakeet",
    "tests.support.sidecar",
    "tests.support.virtual_mic",
]
