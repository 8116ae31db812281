"""Latent-space tasks: each module registers its tasks with :func:`bench.registry.register_task`."""
