"""Independent reference formulas the tests compare ser_diag against (written out, not imported
from the package)."""

import numpy as np


def reference_ccc(x, y, ddof=0):
    """Lin (1989): 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2), moments over n - ddof."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    s_xy = np.sum((x - x.mean()) * (y - y.mean())) / (n - ddof)
    s_xx = np.sum((x - x.mean()) ** 2) / (n - ddof)
    s_yy = np.sum((y - y.mean()) ** 2) / (n - ddof)
    return 2 * s_xy / (s_xx + s_yy + (x.mean() - y.mean()) ** 2)
