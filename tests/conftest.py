"""Shared fixtures live in tests/fixtures/; each module there is a pytest plugin."""

from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: a busy 2-core CI machine must not fail them on timing.
settings.register_profile("asrpro", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("asrpro")

pytest_plugins = [
    "tests.fixtures.audio",
    "tests.fixtures.models",
    "tests.fixtures.parakeet",
    "tests.fixtures.virtual_mic",
]
