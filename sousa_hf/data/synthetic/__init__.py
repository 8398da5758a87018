"""Built-in synthetic SOUSA: the suite's offline stand-in for `zkeown/sousa`."""

from .writer import make_synthetic_sousa

__all__ = ["make_synthetic_sousa"]
