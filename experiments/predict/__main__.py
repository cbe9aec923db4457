"""``python -m experiments.predict``: runs
:func:`experiments.predict.predict.main`."""
import sys

from experiments.predict.predict import main

if __name__ == "__main__":
    sys.exit(main())
