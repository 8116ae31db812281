"""Errors caused by user input: the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (config, names, paths, missing artifacts); the message says what and how to fix it."""
