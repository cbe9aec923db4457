"""``python -m experiments.train_agent``: runs
:func:`experiments.training.train_agent.main`."""
import sys

from experiments.training.train_agent import main

if __name__ == "__main__":
    sys.exit(main())
