"""Asset kinds and revenue-split policies: the on-chain vocabulary, as pure value types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cairn.core.errors import InvalidInput

BPS = 10_000  # basis points in a whole
ROLES = ("owner", "data", "compute", "upstream")


class AssetKind(IntEnum):
    """What an asset is; the numbers are AssetRegistry's `kind` values."""

    DATASET = 1
    MODEL = 2
    APP = 3

    @classmethod
    def parse(cls, value: str | int) -> AssetKind:
        """`dataset`/`model`/`app` (or 1/2/3) to a kind; anything else is `InvalidInput`."""
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise InvalidInput(f"unknown asset kind {value!r}: use one of dataset, model, app")

    @property
    def label(self) -> str:
        """The kind's lower-case name."""
        return self.name.lower()


@dataclass(frozen=True)
class RevenueSplit:
    """Shares of an asset's revenue per role, in basis points summing to exactly 10,000."""

    owner: int
    data: int
    compute: int
    upstream: int

    def __post_init__(self) -> None:
        for role in ROLES:
            share = getattr(self, role)
            if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= BPS:
                raise InvalidInput(
                    f"split: {role} share must be an integer 0..{BPS} bps; got {share!r}"
                )
        total = sum(self.as_tuple())
        if total != BPS:
            raise InvalidInput(
                f"split must sum to {BPS} bps (100 %); owner+data+compute+upstream = {total}"
            )

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(owner, data, compute, upstream), the order AssetRegistry stores."""
        return (self.owner, self.data, self.compute, self.upstream)

    def as_dict(self) -> dict[str, int]:
        """Role name to basis points."""
        return dict(zip(ROLES, self.as_tuple(), strict=True))

    @classmethod
    def parse(cls, text: str) -> RevenueSplit:
        """Parse `owner,data,compute,upstream` basis points, e.g. `7000,1000,1000,1000`."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != len(ROLES) or not all(p.isdigit() for p in parts):
            raise InvalidInput(
                f"split {text!r} must be four integers owner,data,compute,upstream in bps"
            )
        return cls(*(int(p) for p in parts))

    @classmethod
    def owner_only(cls) -> RevenueSplit:
        """Everything to the owner: the default for an asset with no contributors."""
        return cls(BPS, 0, 0, 0)


# A dataset's revenue goes mostly to the people whose records it holds.
DEFAULT_DATASET_SPLIT = RevenueSplit(owner=1_000, data=9_000, compute=0, upstream=0)
# The one way to make a dataset: an asset of kind dataset without a spec takes no records.
HOW_TO_CREATE = (
    "create datasets with `cairn dataset create` (POST /api/v1/datasets), which registers "
    "the asset with its spec and lets this node anchor its records"
)


def refuse_bare_dataset(kind: str | int) -> AssetKind:
    """`kind`, unless it is a dataset: registered as a bare asset, a dataset would have no spec
    (task, record schema, policies), so nobody could contribute to it."""
    parsed = AssetKind.parse(kind)
    if parsed is AssetKind.DATASET:
        raise InvalidInput(f"a dataset is more than an asset: {HOW_TO_CREATE}")
    return parsed
