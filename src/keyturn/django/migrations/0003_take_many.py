"""The function batches of takes call (``keyturn_take_many``, PostgreSQL schema version 7), by the store's own
migration: made in the schema, not per connection, so the store keeps nothing in a server connection's
session (a pooler in transaction mode).

As ``0002``: the same step (the schema brought up to date, whatever version it had), for a project that
migrated before the function was part of the schema. SQLite's schema does not change.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def upgrade_store(apps: Any, schema_editor: Any) -> None:
    from keyturn.django.migrate import migrate_store

    migrate_store(schema_editor.connection.alias, schema_editor.connection.settings_dict)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("keyturn", "0002_client_dpop")]  # noqa: RUF012  # Django's own way of declaring them
    operations = [  # noqa: RUF012
        migrations.RunPython(upgrade_store, migrations.RunPython.noop, atomic=False, elidable=False),
    ]
