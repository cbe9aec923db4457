"""``python -m experiments.gradcam``: runs
:func:`experiments.gradcam.gradcam.main`."""
import sys

from experiments.gradcam.gradcam import main

if __name__ == "__main__":
    sys.exit(main())
