"""``python -m experiments.synthetic``: generate the synthetic MURA-format data set."""
