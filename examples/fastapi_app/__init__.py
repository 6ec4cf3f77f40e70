"""An application with its own users (SQLAlchemy on SQLite) that serves Keyturn's sessions itself.

See ``docs/fastapi.md``: ``python -m examples.fastapi_app serve`` starts it.
"""
