"""``python -m experiments.reference_report``: runs
:func:`experiments.pretrain.reference_report.main`."""
import sys

from experiments.pretrain.reference_report import main

if __name__ == "__main__":
    sys.exit(main())
