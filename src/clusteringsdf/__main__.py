"""``python -m clusteringsdf <command> ...``: the command line of :mod:`clusteringsdf.cli`.

A batch job starts its commands this way; :func:`clusteringsdf.batch.die_with_job` makes such a
command stop with its job (and does nothing in any other process).
"""

from __future__ import annotations

import sys

from .batch import die_with_job
from .cli import main

if __name__ == "__main__":
    die_with_job()
    sys.exit(main())
