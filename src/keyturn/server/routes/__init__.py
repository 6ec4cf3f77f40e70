"""HTTP routes: each parses, calls a service, and returns."""
