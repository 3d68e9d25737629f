"""The package's promises about bad input, damage, faults and concurrency, one file per area.

Each module's docstring lists the promises it pins; ``docs/reliability.md`` is the index.
"""
