"""Part-attention against plain attention at an equal budget."""
