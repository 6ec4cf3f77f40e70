"""``SIMPLE_JWT["AUTH_HEADER_TYPES"]`` as ``keyturn.django`` reads it: an entry no header could carry as a
scheme (empty, with a space or a line break) is left out, so a refusal's challenge is never malformed and
never a 500 (Django refuses a header value with a line break); a value that is no list at all (``None``)
reads as none, not a crash. (Regression: the first entry became the challenge's scheme as it was, and
``None`` raised ``TypeError`` on every request.)"""

from __future__ import annotations

import json

from ._project import ExampleProject

PROBE = """
import json
from django.test import RequestFactory, override_settings
from keyturn.django.authentication import refusal_form, token_of
from keyturn.errors import TokenMissing
seen = {}
for name, types in {
    "line break": ("JWT\\r\\nX-Injected: 1", "JWT"),
    "empty": ("", " ", "Token"),
    "none": None,
}.items():
    with override_settings(SIMPLE_JWT={"AUTH_HEADER_TYPES": types}):
        request = RequestFactory().get("/api/me/")
        challenge = refusal_form(request).headers(TokenMissing())["WWW-Authenticate"]
        seen[name] = [challenge.split(",")[0], token_of("JWT abc"), token_of("Token abc")]
print(json.dumps(seen))
"""


def test_entries_that_are_no_scheme_are_left_out(sqlite_project: ExampleProject) -> None:
    seen = json.loads(sqlite_project.shell(PROBE).splitlines()[-1])
    assert seen == {
        "line break": ['JWT realm="keyturn"', ["abc", "bearer"], None],
        "empty": ['Token realm="keyturn"', None, ["abc", "bearer"]],
        "none": ['Bearer realm="keyturn"', None, None],
    }
