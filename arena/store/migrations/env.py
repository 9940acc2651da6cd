"""Alembic env: migrates the connection that :mod:`arena.store.migrate` hands over, nothing else."""

from __future__ import annotations

from alembic import context

from arena.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `arena db upgrade` or Store.upgrade(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
# The caller's transaction is the migration's transaction (alembic does not open a second one).
with context.begin_transaction():
    context.run_migrations()
