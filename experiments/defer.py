"""``python -m experiments.defer``: runs
:func:`experiments.deferral.defer.main`."""
import sys

from experiments.deferral.defer import main

if __name__ == "__main__":
    sys.exit(main())
