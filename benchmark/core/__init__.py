"""Small utilities every layer uses: the typed specs, errors, hashing, atomic writes, locks, the workdir and registries."""
