"""Subcommands of the `arena` CLI: each module exposes ``register(subparsers)``."""
