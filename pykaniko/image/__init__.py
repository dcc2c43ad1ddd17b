"""The OCI image model: digests, media types, platforms, references, manifests and
configs that keep their raw bytes, the local blob store, layer compression with both
digests in one pass, and the docker-archive / OCI-layout writers.

May import only the stdlib, ``isal``, ``zstandard`` and ``pykaniko.errors``; never the
registry, snapshot, executor or dockerfile packages.
"""
