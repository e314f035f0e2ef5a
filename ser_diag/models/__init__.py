"""Modelling wing: demo speech corpus, encoders, fusion heads, losses, training, ensembles.

The only part of ``ser_diag`` importing torch/transformers; each submodule imports them itself,
so importing this package stays light. Nothing outside ``ser_diag.models`` imports it at
module level.
"""


def _no_progress_monitor_thread() -> None:
    """Switch off tqdm's monitor thread (``tqdm.monitor_interval = 0``; it only tunes how often a
    stalled bar redraws). Our bars and transformers' loading bars would otherwise leave a daemon
    thread alive for the rest of the process, and :mod:`ser_diag.parallel` never forks beside
    another thread: every later ``figures`` or ``diagnose`` in that process would run on one core."""
    try:
        import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with transformers
        return
    tqdm.tqdm.monitor_interval = 0


_no_progress_monitor_thread()
