"""The papers' practical experiments by name (``ufm experiment NAME``): the module that runs
each one. Kept apart from `ufm.networks.experiments` so that building the command line does
not import the training stack (xarray, zarr, optax)."""

MODULES = {
    "terminal": "ufm.networks.terminal",
    "dang": "ufm.networks.dang",
    "dang-balanced": "ufm.networks.dang_balanced",
    "tirer": "ufm.networks.tirer",
    "fisher": "ufm.networks.fisher",
    "dhkd": "ufm.networks.dhkd",
    "dhkd-gaussian": "ufm.networks.dhkd_gaussian",
    "linguistic": "ufm.language.experiment",
    "linguistic-ufm": "ufm.language.experiment_ufm",
}
