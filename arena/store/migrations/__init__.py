"""Alembic environment of the ratings store; run it through :mod:`arena.store.migrate`."""
