"""Backends for the shared contract suites: one module per technology."""
