"""The synthetic MURA-format data set: the project's built-in stand-in for MURA-v1.1.

* :mod:`~mura_env.synthetic.plan`: how many studies and images per split, body part and label;
* :mod:`~mura_env.synthetic.anatomy`: the bones of each body part, as shapes;
* :mod:`~mura_env.synthetic.render`: draws one view with its findings;
* :mod:`~mura_env.synthetic.dataset`: samples studies and writes ``MURA-v1.1/`` atomically;
* :mod:`~mura_env.synthetic.preview`: a contact sheet of examples;

Its command is ``python -m experiments.synthetic``.
Importing it loads neither the env modules nor torch.
"""

from mura_env.synthetic.dataset import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    SYNTHETIC_NOTE,
    StudySpec,
    encode_png,
    generate,
    read_manifest,
    render_study,
    sample_study,
    sample_view,
)
from mura_env.synthetic.preview import contact_sheet

__all__ = [
    "GENERATOR_VERSION", "MANIFEST_NAME", "SYNTHETIC_NOTE", "StudySpec",
    "contact_sheet", "encode_png", "generate", "read_manifest", "render_study",
    "sample_study", "sample_view",
]
