"""``python -m mura_env.synthetic``: see :mod:`mura_env.synthetic.cli`."""

import sys

from mura_env.synthetic.cli import main

sys.exit(main())
