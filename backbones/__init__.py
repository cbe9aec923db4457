"""CNN backbones, input pipelines, training and study-level logit extraction."""
