"""Every domain's tables, imported in one place so that migrations see the whole schema."""

from __future__ import annotations

from cairn.assets import models as _assets  # noqa: F401
from cairn.chain import models as _chain  # noqa: F401
from cairn.compute import models as _compute  # noqa: F401
from cairn.data import models as _data  # noqa: F401
from cairn.db.engine import Base
from cairn.economy import models as _economy  # noqa: F401
from cairn.identity import models as _identity  # noqa: F401

metadata = Base.metadata
