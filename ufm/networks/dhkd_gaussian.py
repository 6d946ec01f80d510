"""Yang et al.'s dual-head distillation on a Gaussian mixture (`ufm experiment
dhkd-gaussian`): the same teacher, students and comparison as `dhkd`, on 10 seeded Gaussian
classes in 30 dimensions (`dhkd.GAUSSIAN`), harder than digits."""

from .dhkd import compare, plot, setup_gaussian

NAME = "dhkd-gaussian"
SUMMARY = "Yang et al. (DHKD): the dhkd students and comparison on a 10-class Gaussian mixture"


def setup(quick: bool = False):
    return setup_gaussian(quick)


__all__ = ["compare", "plot", "setup"]
