"""regulab: train CNNs on CIFAR-10 and measure what stops them overfitting."""

from regulab.errors import RegulabError

__version__ = "0.1.0"
__all__ = ["RegulabError", "__version__"]
