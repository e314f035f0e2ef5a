"""Modelling wing: demo speech corpus, encoders, fusion heads, losses, training, ensembles.

The only part of ``ser_diag`` importing torch/transformers; each submodule imports them itself,
so importing this package stays light. Nothing outside ``ser_diag.models`` imports it at
module level.
"""
