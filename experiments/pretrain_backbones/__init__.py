"""``python -m experiments.pretrain_backbones``: pretrain the CNN members and write their study-
level logits."""
