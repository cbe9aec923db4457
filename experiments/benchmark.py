"""``python -m experiments.benchmark``: runs
:func:`experiments.weighting.benchmark.main`."""
import sys

from experiments.weighting.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
