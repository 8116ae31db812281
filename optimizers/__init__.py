"""Optimizers: each module registers its classes with :func:`bench.registry.register_optimizer`.

Modules whose name starts with an underscore hold shared helpers and register nothing.
"""
