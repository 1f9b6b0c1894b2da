"""mccom_core: model cascading for code completion (MCCom) and self-testing code-generation cascades.

One module per concept; see README.md for the map.
"""

from mccom_core.errors import MccomError

__version__ = "0.1.0"
__all__ = ["MccomError", "__version__"]
