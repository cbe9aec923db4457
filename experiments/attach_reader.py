"""``python -m experiments.attach_reader``: runs
:func:`experiments.deferral.attach_reader.main`."""
import sys

from experiments.deferral.attach_reader import main

if __name__ == "__main__":
    sys.exit(main())
