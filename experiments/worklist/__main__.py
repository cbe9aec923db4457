"""``python -m experiments.worklist``: runs :func:`experiments.worklist.worklist.main`."""
import sys

from experiments.worklist.worklist import main

if __name__ == "__main__":
    sys.exit(main())
