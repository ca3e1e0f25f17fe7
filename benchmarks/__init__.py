"""nbp_kit's benchmarks: ``python -m benchmarks`` (``make bench``) runs them all and writes
``docs/benchmarks.md``; ``python -m benchmarks --quick`` is a fast smoke run. See
``benchmarks/__main__.py`` and ``docs/benchmarks.md``."""
