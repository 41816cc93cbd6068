"""Cairn: a self-hostable platform where a community builds AI models together and owns them."""

import warnings

__version__ = "0.1.0"

# The siwe package's ABNF grammar redefines core rules on import and says so at length.
warnings.filterwarnings("ignore", message=r"rule '.*' redefines", module=r"abnf\..*")
