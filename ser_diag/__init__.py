"""ser_diag: where and for whom does a speech-emotion-recognition model fail?

Diagnostics for the Interspeech 2025 SER challenge (MSP-Podcast) formats: loaders with
validation, metrics with bootstrap uncertainty, the paper's figures, bias audits, system
fusion, an explorer and an HTML report. The modelling wing (``ser_diag.models``) is the only
part that imports torch/transformers and is never imported from here.
"""

from ser_diag.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]
