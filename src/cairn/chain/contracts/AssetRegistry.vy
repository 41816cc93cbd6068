# pragma version ~=0.4.0
"""
@title Cairn asset registry
@custom:contract-name AssetRegistry
@license Apache-2.0
@notice Every dataset, model and application on Cairn is an ERC-721 token
        (https://eips.ethereum.org/EIPS/eip-721) of this contract. An asset
        records its kind, the CID of its metadata, its licence, its lineage
        (the assets it was built from) and its revenue-split policy. The
        owner may name curators, who may anchor contribution batches for
        the asset in the `ContributionLedger`.
@dev Token ids start at 1 and are sequential, so an id exists exactly when
     `1 <= id <= total_assets()`; id 0 never exists. There is no burn.

     Over 400 lines because ERC-721 itself (owners, approvals, operators,
     safe transfers with receiver checks, ERC-165) is written out here
     beside the registry's kinds, lineage, splits and curators.
"""


# @dev We import and implement the built-in `IERC165` interface.
from ethereum.ercs import IERC165
implements: IERC165


# @dev We import and implement the built-in `IERC721` interface.
from ethereum.ercs import IERC721
implements: IERC721


# @dev The receiver hook a contract must implement to accept a
# `safeTransferFrom`.
interface IERC721Receiver:
    def onERC721Received(
        operator: address, owner: address, token_id: uint256, data: Bytes[1_024]
    ) -> bytes4: nonpayable


# @dev The ERC-165 identifiers of ERC-165, ERC-721 and the ERC-721
# metadata extension.
_SUPPORTED_INTERFACES: constant(bytes4[3]) = [
    0x01FFC9A7,
    0x80AC58CD,
    0x5B5E139F,
]


# @dev The value `onERC721Received` returns to accept a token.
_ERC721_RECEIVED: constant(bytes4) = method_id(
    "onERC721Received(address,address,uint256,bytes)", output_type=bytes4
)


# @dev Asset kinds.
KIND_DATASET: public(constant(uint8)) = 1
KIND_MODEL: public(constant(uint8)) = 2
KIND_APP: public(constant(uint8)) = 3


# @dev The revenue split is given in basis points of the whole.
_SPLIT_TOTAL: constant(uint256) = 10_000


# @dev The most lineage parents an asset may name.
_MAX_PARENTS: constant(uint256) = 16


# @dev The ERC-721 collection name and symbol.
name: public(constant(String[12])) = "Cairn Assets"
symbol: public(constant(String[5])) = "CAIRN"


# @dev One registered asset. `split` holds basis points for
# [owner, data, compute, upstream] and sums to 10000.
struct Asset:
    kind: uint8
    metadata_cid: String[128]
    licence: String[64]
    parents: DynArray[uint256, _MAX_PARENTS]
    split: uint16[4]
    registered_at: uint256


# @dev Whether an operator may manage all of an owner's tokens,
# as `isApprovedForAll[owner][operator]`.
isApprovedForAll: public(HashMap[address, HashMap[address, bool]])


# @dev The number of assets registered so far, which is also the
# highest token id.
_total_assets: uint256


# @dev The record of each asset by token id.
_assets: HashMap[uint256, Asset]


# @dev The owner of each token id; zero for an id that does not exist.
_owners: HashMap[uint256, address]


# @dev The number of tokens each account owns.
_balances: HashMap[address, uint256]


# @dev The single account approved to move each token.
_token_approvals: HashMap[uint256, address]


# @dev Curators as `_curators[asset_id][owner][account]`. Keying by
# the owner who named them means a transfer retires every curator at
# once without iterating over them: the new owner looks up a fresh
# map. If the asset ever returns to the earlier owner, that owner's
# curators apply again.
_curators: HashMap[uint256, HashMap[address, HashMap[address, bool]]]


# @dev Emitted when an asset is registered.
event AssetRegistered:
    asset_id: indexed(uint256)
    owner: indexed(address)
    kind: uint8
    metadata_cid: String[128]
    licence: String[64]


# @dev Emitted when an asset points to a new metadata CID (a new
# version).
event MetadataUpdated:
    asset_id: indexed(uint256)
    metadata_cid: String[128]


# @dev Emitted when the asset's owner names or removes a curator.
event CuratorSet:
    asset_id: indexed(uint256)
    account: indexed(address)
    allowed: bool


@deploy
def __init__():
    """
    @notice Deploys an empty registry.
    """
    pass


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice Whether this contract implements the interface
            `interface_id` (ERC-165).
    @param interface_id The 4-byte ERC-165 interface identifier.
    @return bool `True` for ERC-165, ERC-721 and ERC-721 metadata.
    """
    return interface_id in _SUPPORTED_INTERFACES


@external
@view
def balanceOf(owner: address) -> uint256:
    """
    @notice The number of assets `owner` holds.
    @param owner The account; cannot be the zero address.
    @return uint256 The number of tokens.
    """
    assert owner != empty(address), "cairn_registry: invalid owner"
    return self._balances[owner]


@external
@view
def ownerOf(token_id: uint256) -> address:
    """
    @notice The owner of asset `token_id`.
    @param token_id The asset id; must exist.
    @return address The owner.
    """
    return self._owner_of(token_id)


@external
@view
def getApproved(token_id: uint256) -> address:
    """
    @notice The single account approved to move `token_id`.
    @param token_id The asset id; must exist.
    @return address The approved account, or the zero address.
    """
    self._owner_of(token_id)
    return self._token_approvals[token_id]


@external
@view
def tokenURI(token_id: uint256) -> String[135]:
    """
    @notice The metadata URI of asset `token_id`.
    @param token_id The asset id; must exist.
    @return String "ipfs://" followed by the metadata CID.
    """
    self._owner_of(token_id)
    return concat("ipfs://", self._assets[token_id].metadata_cid)


@external
@payable
def approve(to: address, token_id: uint256):
    """
    @notice Lets `to` move `token_id` until its next transfer;
            the zero address clears the approval.
    @dev The caller must own the token or be approved for all of
         the owner's tokens. `payable` as the EIP-721 interface
         declares it.
    @param to The account to approve.
    @param token_id The asset id; must exist.
    """
    owner: address = self._owner_of(token_id)
    assert to != owner, "cairn_registry: approval to current owner"
    assert (
        msg.sender == owner or self.isApprovedForAll[owner][msg.sender]
    ), "cairn_registry: caller is not token owner or approved for all"
    self._token_approvals[token_id] = to
    log IERC721.Approval(owner=owner, approved=to, token_id=token_id)


@external
def setApprovalForAll(operator: address, approved: bool):
    """
    @notice Lets `operator` move, approve and update all of the
            caller's assets (`approved` is `True`), or stops it.
    @param operator The operator; cannot be the caller.
    @param approved Whether `operator` is approved.
    """
    assert operator != msg.sender, "cairn_registry: approve to caller"
    self.isApprovedForAll[msg.sender][operator] = approved
    log IERC721.ApprovalForAll(owner=msg.sender, operator=operator, approved=approved)


@external
@payable
def transferFrom(owner: address, to: address, token_id: uint256):
    """
    @notice Moves asset `token_id` from `owner` to `to`.
    @dev The caller must be the owner, approved for the token, or
         approved for all. Does not check that a contract `to` can
         handle the token; use `safeTransferFrom` for that. `payable`
         as the EIP-721 interface declares it.
    @param owner The current owner.
    @param to The receiver; cannot be the zero address.
    @param token_id The asset id; must exist.
    """
    self._transfer(owner, to, token_id)


@external
@payable
def safeTransferFrom(owner: address, to: address, token_id: uint256, data: Bytes[1_024] = b""):
    """
    @notice Moves asset `token_id` from `owner` to `to`, and if `to`
            is a contract, requires it to accept the token through
            `onERC721Received`.
    @dev The default for `data` makes Vyper expose both ERC-721
         overloads. The receiver is called after the transfer
         (checks-effects-interactions); a receiver that reverts or
         returns anything else reverts the whole transfer.
    @param owner The current owner.
    @param to The receiver; cannot be the zero address.
    @param token_id The asset id; must exist.
    @param data Passed unchanged to `onERC721Received`.
    """
    self._transfer(owner, to, token_id)
    if to.is_contract:
        success: bool = False
        response: Bytes[32] = b""
        success, response = raw_call(
            to,
            abi_encode(
                msg.sender, owner, token_id, data, method_id=_ERC721_RECEIVED
            ),
            max_outsize=32,
            revert_on_failure=False,
        )
        assert (
            success and len(response) == 32 and convert(slice(response, 0, 4), bytes4) == _ERC721_RECEIVED
        ), "cairn_registry: transfer to non-ERC721Receiver implementer"


@external
def register(
    kind: uint8,
    metadata_cid: String[128],
    licence: String[64],
    parents: DynArray[uint256, _MAX_PARENTS],
    split: uint16[4],
) -> uint256:
    """
    @notice Registers a new asset owned by the caller and mints its
            token.
    @param kind 1 for a dataset, 2 for a model, 3 for an application.
    @param metadata_cid The CID of the asset's metadata; non-empty.
    @param licence The licence identifier, e.g. an SPDX id.
    @param parents The assets this one was built from; each must exist
           and appear once.
    @param split Basis points for [owner, data, compute, upstream];
           must sum to exactly 10000.
    @return uint256 The new asset id.
    """
    assert kind >= KIND_DATASET and kind <= KIND_APP, "cairn_registry: invalid kind"
    assert len(metadata_cid) != 0, "cairn_registry: empty metadata cid"
    total: uint256 = self._total_assets
    for i: uint256 in range(len(parents), bound=_MAX_PARENTS):
        parent: uint256 = parents[i]
        assert parent != 0 and parent <= total, "cairn_registry: parent does not exist"
        for j: uint256 in range(i, bound=_MAX_PARENTS):
            assert parents[j] != parent, "cairn_registry: duplicate parent"
    split_sum: uint256 = 0
    for share: uint16 in split:
        split_sum += convert(share, uint256)
    assert split_sum == _SPLIT_TOTAL, "cairn_registry: split must sum to 10000"

    asset_id: uint256 = total + 1
    self._total_assets = asset_id
    self._assets[asset_id] = Asset(
        kind=kind,
        metadata_cid=metadata_cid,
        licence=licence,
        parents=parents,
        split=split,
        registered_at=block.timestamp,
    )
    self._owners[asset_id] = msg.sender
    # Cannot overflow: no account holds more tokens than were minted.
    self._balances[msg.sender] = unsafe_add(self._balances[msg.sender], 1)
    log IERC721.Transfer(sender=empty(address), receiver=msg.sender, token_id=asset_id)
    log AssetRegistered(
        asset_id=asset_id, owner=msg.sender, kind=kind, metadata_cid=metadata_cid, licence=licence
    )
    return asset_id


@external
def set_metadata(asset_id: uint256, metadata_cid: String[128]):
    """
    @notice Points asset `asset_id` at a new metadata CID, e.g. for
            a new version of a dataset or model.
    @dev The caller must be the owner or approved for all of the
         owner's tokens.
    @param asset_id The asset id; must exist.
    @param metadata_cid The new metadata CID; non-empty.
    """
    owner: address = self._owner_of(asset_id)
    assert (
        msg.sender == owner or self.isApprovedForAll[owner][msg.sender]
    ), "cairn_registry: caller is not owner or approved for all"
    assert len(metadata_cid) != 0, "cairn_registry: empty metadata cid"
    self._assets[asset_id].metadata_cid = metadata_cid
    log MetadataUpdated(asset_id=asset_id, metadata_cid=metadata_cid)


@external
def set_curator(asset_id: uint256, account: address, allowed: bool):
    """
    @notice Names (`allowed` is `True`) or removes `account` as a
            curator of `asset_id`. Curators may anchor contribution
            batches for the asset. They serve the current owner only:
            a transfer of the asset retires them.
    @dev Only the asset's owner may call this.
    @param asset_id The asset id; must exist.
    @param account The curator; cannot be the zero address.
    @param allowed Whether `account` is a curator.
    """
    owner: address = self._owner_of(asset_id)
    assert msg.sender == owner, "cairn_registry: caller is not the asset owner"
    assert account != empty(address), "cairn_registry: curator is the zero address"
    self._curators[asset_id][owner][account] = allowed
    log CuratorSet(asset_id=asset_id, account=account, allowed=allowed)


@external
@view
def get_asset(asset_id: uint256) -> Asset:
    """
    @notice The full record of asset `asset_id`.
    @param asset_id The asset id; must exist.
    @return Asset Kind, metadata CID, licence, parents, split and
            registration time.
    """
    self._owner_of(asset_id)
    return self._assets[asset_id]


@external
@view
def total_assets() -> uint256:
    """
    @notice The number of assets registered, which is also the
            highest asset id.
    @return uint256 The number of assets.
    """
    return self._total_assets


@external
@view
def is_curator(asset_id: uint256, account: address) -> bool:
    """
    @notice Whether `account` is a curator named by the current owner
            of `asset_id`.
    @param asset_id The asset id; `False` if it does not exist.
    @param account The account to check.
    @return bool Whether `account` is a curator.
    """
    return self._curators[asset_id][self._owners[asset_id]][account]


@external
@view
def can_anchor(asset_id: uint256, account: address) -> bool:
    """
    @notice Whether `account` may anchor contribution batches for
            `asset_id`: it is the owner or one of the owner's curators.
    @param asset_id The asset id; `False` if it does not exist.
    @param account The account to check.
    @return bool Whether `account` may anchor.
    """
    owner: address = self._owners[asset_id]
    if owner == empty(address):
        return False
    return account == owner or self._curators[asset_id][owner][account]


@internal
@view
def _owner_of(token_id: uint256) -> address:
    """
    @notice The owner of `token_id`, reverting if it does not exist.
    @param token_id The asset id.
    @return address The owner.
    """
    owner: address = self._owners[token_id]
    assert owner != empty(address), "cairn_registry: invalid token id"
    return owner


@internal
def _transfer(owner: address, to: address, token_id: uint256):
    """
    @notice Moves `token_id` from `owner` to `to` for the caller,
            clearing its single approval.
    @param owner The current owner.
    @param to The receiver; cannot be the zero address.
    @param token_id The asset id; must exist.
    """
    current: address = self._owner_of(token_id)
    assert (
        msg.sender == current
        or self.isApprovedForAll[current][msg.sender]
        or self._token_approvals[token_id] == msg.sender
    ), "cairn_registry: caller is not token owner or approved"
    assert current == owner, "cairn_registry: transfer from incorrect owner"
    assert to != empty(address), "cairn_registry: transfer to the zero address"
    self._token_approvals[token_id] = empty(address)
    # Cannot underflow: `owner` holds `token_id`, so its balance is at
    # least one. Cannot overflow: balances are bounded by the number of
    # tokens minted.
    self._balances[owner] = unsafe_sub(self._balances[owner], 1)
    self._balances[to] = unsafe_add(self._balances[to], 1)
    self._owners[token_id] = to
    log IERC721.Transfer(sender=owner, receiver=to, token_id=token_id)
