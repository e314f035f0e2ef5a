import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# The longest test files first (seconds of test time measured on 2 cores, the full suite; a
# file not listed runs after these, in collection order). pytest-xdist hands out whole files
# (--dist loadfile, with --no-loadscope-reorder so it keeps this order): started last, a long
# file would run alone at the end while the other worker idles.
LONGEST_FIRST = (
    "test_main_command.py",                      # ~100 s (slow)
    "notebooks/test_notebooks_models.py",        # ~45 s (slow)
    "test_cli.py",                               # ~55 s
    "report/test_report.py",                     # ~50 s
    "explorer/test_explore.py",                  # ~35 s
    "io/test_reliability_property.py",           # ~28 s
    "notebooks/test_notebooks_diagnostics.py",   # ~25 s (slow)
    "test_parallel.py",                          # ~22 s
    "test_reproducible_outputs.py",              # ~21 s (slow)
    "test_demo.py",                              # ~19 s
    "explorer/test_browser_explorer.py",         # ~19 s (slow)
    "test_corpora_end_to_end.py",                # ~40 s (figures/report part slow)
    "test_cli_corpora.py",                       # ~20 s
    "test_figures.py",                           # ~15 s
    "models/test_encoders_features.py",          # ~11 s
    "plots/test_plots_saving.py",                # ~11 s
)


def pytest_collection_modifyitems(config, items):
    tests = os.path.dirname(os.path.abspath(__file__))
    rank = {os.path.join(tests, *name.split("/")): i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(str(item.path), len(rank)))   # stable: order kept within
