"""``python -m experiments.retrain``: runs :func:`experiments.retrain.retrain.main`."""
import sys

from experiments.retrain.retrain import main

if __name__ == "__main__":
    sys.exit(main())
