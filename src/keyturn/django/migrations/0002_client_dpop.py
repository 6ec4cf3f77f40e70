"""A registered client's own DPoP policy (``oauth_clients.dpop``, issue 17), by the store's own migration.

As ``0001``: the store keeps its own schema version and migrates itself, so this runs the same step
(the schema brought up to date, whatever version it had) for a project that migrated before the column
existed.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def upgrade_store(apps: Any, schema_editor: Any) -> None:
    from keyturn.django.migrate import migrate_store

    migrate_store(schema_editor.connection.alias, schema_editor.connection.settings_dict)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("keyturn", "0001_keyturn_store")]  # noqa: RUF012  # Django's own way of declaring them
    operations = [  # noqa: RUF012
        migrations.RunPython(upgrade_store, migrations.RunPython.noop, atomic=False, elidable=False),
    ]
