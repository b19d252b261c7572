"""The autoencoder course: data, models, trainer, metrics, plots and widgets for the notebooks.

Import from the topic modules, e.g. `from course.training import fit`.
"""

__version__ = "0.1.0"
