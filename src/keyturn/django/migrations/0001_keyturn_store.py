"""Keyturn's tables in the project's database, made by the store's own migrations.

The store keeps its own schema version and migrates itself (``keyturn migrate`` does the same); this
migration runs that on the database being migrated (the test database too), outside Django's
transaction so that the store's own connection does not wait on Django's.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def create_store(apps: Any, schema_editor: Any) -> None:
    from keyturn.django.migrate import migrate_store

    migrate_store(schema_editor.connection.alias, schema_editor.connection.settings_dict)


class Migration(migrations.Migration):
    atomic = False
    initial = True
    operations = [  # noqa: RUF012  # Django's own way of declaring them
        migrations.RunPython(create_store, migrations.RunPython.noop, atomic=False, elidable=False),
    ]
