"""Alembic environment: migrations run on the engine the caller passes in."""

from alembic import context

from driftwarden.monitor.storage import SCHEMA

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=list(SCHEMA),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
