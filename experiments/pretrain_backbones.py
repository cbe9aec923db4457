"""``python -m experiments.pretrain_backbones``: runs
:func:`experiments.pretrain.pretrain_backbones.main`."""
import sys

from experiments.pretrain.pretrain_backbones import main

if __name__ == "__main__":
    sys.exit(main())
