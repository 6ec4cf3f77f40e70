"""``python manage.py keyturn_clients add|list|remove``: the registered OAuth 2.0 clients, as
``keyturn clients`` manages them for ``keyturn serve``, in the store ``settings.KEYTURN`` names (the
project's database after ``migrate``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....clients import LIST_HEADER, added_line, client_actions, listed
from ....server.runtime import Runtime
from ....typing import ClientDpop
from ...service import service

T = TypeVar("T")


class Command(BaseCommand):
    help = "Manage registered OAuth 2.0 clients (docs/oauth.md): add, list, remove."

    def add_arguments(self, parser: CommandParser) -> None:
        client_actions(parser.add_subparsers(dest="action", required=True, metavar="ACTION"))

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "add":
                self._add(options["client_id"], confidential=options["confidential"], dpop=options["dpop"])
            elif action == "list":
                self.stdout.write(LIST_HEADER)
                for client in _run(lambda rt: rt.clients.list()):
                    self.stdout.write(listed(client))
            else:
                self._remove(options["client_id"])
        except ValueError as exc:  # a malformed id, the built-in client's, --dpop required under off
            raise CommandError(str(exc), returncode=2) from None
        finally:
            service().close()

    def _add(self, client_id: str, *, confidential: bool, dpop: ClientDpop) -> None:
        added = _run(lambda rt: rt.clients.add(client_id, confidential=confidential, dpop=dpop))
        if added is None:
            raise CommandError(f"client {client_id} already exists", returncode=1)
        self.stdout.write(added_line(added.record))
        if added.secret is not None:
            self.stdout.write(f"client_secret: {added.secret}")
            self.stderr.write("(shown this once: only a hash of it is kept)")

    def _remove(self, client_id: str) -> None:
        if not _run(lambda rt: rt.clients.remove(client_id)):
            raise CommandError(f"no client {client_id}", returncode=1)
        self.stdout.write(f"removed client {client_id}; its sessions stay until they end")


def _run(call: Callable[[Runtime], Awaitable[T]]) -> T:
    return service().run(call)
