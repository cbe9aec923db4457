"""``python -m experiments.compare``: runs
:func:`experiments.weighting.compare.main`."""
import sys

from experiments.weighting.compare import main

if __name__ == "__main__":
    sys.exit(main())
