"""Root conftest: shared fixtures live in tests/fixtures_*.py and are loaded as plugins."""

pytest_plugins = ["tests.fixtures_pg", "tests.fixtures_models"]
