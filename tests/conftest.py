"""Shared fixtures live in tests/fixtures/; each module there is a pytest plugin."""

pytest_plugins = [
    "tests.fixtures.audio",
    "tests.fixtures.models",
    "tests.fixtures.parakeet",
    "tests.fixtures.virtual_mic",
]
