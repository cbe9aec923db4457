"""``python -m experiments.part_attention``: runs :func:`experiments.part_attention.study.main`."""
import sys

from experiments.part_attention.study import main

if __name__ == "__main__":
    sys.exit(main())
