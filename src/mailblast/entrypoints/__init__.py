"""Entrypoints: the CLI, the local server and the Lambda handlers. Composition only."""
