# pragma version ~=0.4.0
"""
@title Cairn licence token
@custom:contract-name LicenseToken
@license Apache-2.0
@notice Licences to Cairn assets as ERC-1155 tokens
        (https://eips.ethereum.org/EIPS/eip-1155). The owner of an asset
        in the `AssetRegistry` offers licences to it: a price in the
        payment token (zero allowed), terms (open use, non-commercial,
        commercial, or commercial with remix), an optional cap on the
        copies sold, an optional duration, and whether holders may pass
        them on. Each offer is one token id. Buying pays the price to the
        treasury, whose revenue Cairn settles each epoch by the asset's
        lineage and attribution, and mints the copies to the buyer.
        A licence is valid while its holder holds a copy and, for an
        offer with a duration, until the holder's expiry.
@dev Offer ids start at 1 and are sequential. A time-limited licence
     carries one expiry per holder and offer: buying again extends it
     from the later of now and the current expiry; a transfer gives
     the receiver the later of its own and the sender's expiry, so
     passing a licence on never makes it last longer than it was
     bought for.

     Over 400 lines because ERC-1155 itself (balances, operators, safe
     single and batch transfers with receiver checks, ERC-165) is
     written out here, its transfers carrying the expiry rule above.
"""


# @dev We import the built-in `IERC20` and `IERC165` interfaces.
from ethereum.ercs import IERC20
from ethereum.ercs import IERC165
implements: IERC165


# @dev The part of the `AssetRegistry` this contract consults.
interface AssetRegistry:
    def ownerOf(token_id: uint256) -> address: view


# @dev The receiver hooks a contract must implement to accept tokens.
interface IERC1155Receiver:
    def onERC1155Received(
        operator: address, owner: address, id: uint256, amount: uint256, data: Bytes[1_024]
    ) -> bytes4: nonpayable
    def onERC1155BatchReceived(
        operator: address,
        owner: address,
        ids: DynArray[uint256, _MAX_BATCH],
        amounts: DynArray[uint256, _MAX_BATCH],
        data: Bytes[1_024],
    ) -> bytes4: nonpayable


# @dev The ERC-165 identifiers of ERC-165 and ERC-1155.
_SUPPORTED_INTERFACES: constant(bytes4[2]) = [0x01FFC9A7, 0xD9B67A26]


# @dev The values the receiver hooks return to accept tokens.
_ERC1155_RECEIVED: constant(bytes4) = method_id(
    "onERC1155Received(address,address,uint256,uint256,bytes)", output_type=bytes4
)
_ERC1155_BATCH_RECEIVED: constant(bytes4) = method_id(
    "onERC1155BatchReceived(address,address,uint256[],uint256[],bytes)", output_type=bytes4
)


# @dev Licence terms, as an offer's `terms` holds them.
TERMS_OPEN: public(constant(uint8)) = 1
TERMS_NON_COMMERCIAL: public(constant(uint8)) = 2
TERMS_COMMERCIAL: public(constant(uint8)) = 3
TERMS_COMMERCIAL_REMIX: public(constant(uint8)) = 4


# @dev The most ids in one batch call, and offers per asset.
_MAX_BATCH: constant(uint256) = 128
_MAX_OFFERS_PER_ASSET: constant(uint256) = 64


# @dev The longest duration an offer may have (100 years), so that
# expiries never overflow and "perpetual" is spelled 0.
_MAX_DURATION: constant(uint256) = 100 * 365 * 86_400


# @dev One offer. `max_copies` and `duration` are 0 for no cap and
# no time limit; `sold` counts the copies minted so far.
struct Offer:
    asset_id: uint256
    price: uint256
    terms: uint8
    max_copies: uint256
    duration: uint256
    transferable: bool
    active: bool
    sold: uint256


# @dev The payment token.
token: public(immutable(address))


# @dev The registry whose asset owners make offers.
registry: public(immutable(address))


# @dev The account that may name the treasury.
owner: public(address)


# @dev Where licence payments go: the account that settles revenue
# each epoch.
treasury: public(address)


# @dev The number of offers made; the highest offer id.
offer_count: public(uint256)


# @dev Whether an operator may move all of an account's licences,
# as `isApprovedForAll[account][operator]`.
isApprovedForAll: public(HashMap[address, HashMap[address, bool]])


# @dev Each offer by id.
_offers: HashMap[uint256, Offer]


# @dev The offers of each asset, in the order they were made.
_asset_offers: HashMap[uint256, DynArray[uint256, _MAX_OFFERS_PER_ASSET]]


# @dev Copies held, as `_balances[id][account]`.
_balances: HashMap[uint256, HashMap[address, uint256]]


# @dev When each holder's time-limited licence ends, as
# `_expiry[id][account]` (a timestamp; 0 for perpetual offers).
_expiry: HashMap[uint256, HashMap[address, uint256]]


# @dev ERC-1155 events.
event TransferSingle:
    operator: indexed(address)
    sender: indexed(address)
    receiver: indexed(address)
    id: uint256
    value: uint256


event TransferBatch:
    operator: indexed(address)
    sender: indexed(address)
    receiver: indexed(address)
    ids: DynArray[uint256, _MAX_BATCH]
    values: DynArray[uint256, _MAX_BATCH]


event ApprovalForAll:
    account: indexed(address)
    operator: indexed(address)
    approved: bool


# @dev Emitted when an asset's owner makes an offer.
event OfferCreated:
    offer_id: indexed(uint256)
    asset_id: indexed(uint256)
    seller: address
    price: uint256
    terms: uint8
    max_copies: uint256
    duration: uint256
    transferable: bool


# @dev Emitted when an offer is withdrawn or offered again.
event OfferActiveSet:
    offer_id: indexed(uint256)
    active: bool


# @dev Emitted for every purchase; `paid` went to `treasury`.
event LicenceBought:
    offer_id: indexed(uint256)
    asset_id: indexed(uint256)
    buyer: indexed(address)
    holder: address
    copies: uint256
    paid: uint256
    treasury: address
    expires: uint256


# @dev Emitted when the treasury or the owner changes.
event TreasurySet:
    treasury: indexed(address)


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


@deploy
def __init__(token_: address, registry_: address):
    """
    @notice Deploys the licence token; the deployer is its owner and
            first treasury.
    @param token_ The ERC-20 payment token.
    @param registry_ The `AssetRegistry`.
    """
    assert token_.is_contract, "cairn_licence: token is not a contract"
    assert registry_.is_contract, "cairn_licence: registry is not a contract"
    token = token_
    registry = registry_
    self.owner = msg.sender
    self.treasury = msg.sender
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    log TreasurySet(treasury=msg.sender)


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice Whether this contract implements `interface_id` (ERC-165).
    @param interface_id The 4-byte ERC-165 interface identifier.
    @return bool `True` for ERC-165 and ERC-1155.
    """
    return interface_id in _SUPPORTED_INTERFACES


@external
@view
def balanceOf(account: address, id: uint256) -> uint256:
    """
    @notice The copies of licence `id` that `account` holds.
    @param account The holder.
    @param id The offer id.
    @return uint256 The number of copies.
    """
    return self._balances[id][account]


@external
@view
def balanceOfBatch(
    accounts: DynArray[address, _MAX_BATCH], ids: DynArray[uint256, _MAX_BATCH]
) -> DynArray[uint256, _MAX_BATCH]:
    """
    @notice The copies held by each (account, id) pair.
    @param accounts The holders.
    @param ids The offer ids, as many as `accounts`.
    @return DynArray The balances, in order.
    """
    assert len(accounts) == len(ids), "cairn_licence: accounts and ids length mismatch"
    out: DynArray[uint256, _MAX_BATCH] = []
    for i: uint256 in range(len(accounts), bound=_MAX_BATCH):
        out.append(self._balances[ids[i]][accounts[i]])
    return out


@external
def setApprovalForAll(operator: address, approved: bool):
    """
    @notice Lets `operator` move all of the caller's licences, or stops it.
    @param operator The operator; cannot be the caller.
    @param approved Whether `operator` is approved.
    """
    assert operator != msg.sender, "cairn_licence: approve to caller"
    self.isApprovedForAll[msg.sender][operator] = approved
    log ApprovalForAll(account=msg.sender, operator=operator, approved=approved)


@external
def safeTransferFrom(
    sender: address, receiver: address, id: uint256, amount: uint256, data: Bytes[1_024]
):
    """
    @notice Moves `amount` copies of licence `id` from `sender` to
            `receiver`, if the offer's terms let holders transfer.
    @dev A contract receiver must accept through `onERC1155Received`.
         A time-limited licence keeps its expiry.
    @param sender The holder; the caller or approved by it for all.
    @param receiver The new holder; not the zero address.
    @param id The offer id.
    @param amount The copies to move.
    @param data Passed unchanged to the receiver hook.
    """
    self._check_transfer(sender, receiver)
    self._move(sender, receiver, id, amount)
    log TransferSingle(operator=msg.sender, sender=sender, receiver=receiver, id=id, value=amount)
    if receiver.is_contract:
        answer: bytes4 = extcall IERC1155Receiver(receiver).onERC1155Received(
            msg.sender, sender, id, amount, data
        )
        assert answer == _ERC1155_RECEIVED, "cairn_licence: receiver refused the licence"


@external
def safeBatchTransferFrom(
    sender: address,
    receiver: address,
    ids: DynArray[uint256, _MAX_BATCH],
    amounts: DynArray[uint256, _MAX_BATCH],
    data: Bytes[1_024],
):
    """
    @notice Moves several licences at once; each must be transferable.
    @param sender The holder; the caller or approved by it for all.
    @param receiver The new holder; not the zero address.
    @param ids The offer ids.
    @param amounts The copies of each, as many as `ids`.
    @param data Passed unchanged to the receiver hook.
    """
    assert len(ids) == len(amounts), "cairn_licence: ids and amounts length mismatch"
    self._check_transfer(sender, receiver)
    for i: uint256 in range(len(ids), bound=_MAX_BATCH):
        self._move(sender, receiver, ids[i], amounts[i])
    log TransferBatch(operator=msg.sender, sender=sender, receiver=receiver, ids=ids, values=amounts)
    if receiver.is_contract:
        answer: bytes4 = extcall IERC1155Receiver(receiver).onERC1155BatchReceived(
            msg.sender, sender, ids, amounts, data
        )
        assert answer == _ERC1155_BATCH_RECEIVED, "cairn_licence: receiver refused the licence"


@external
def offer(
    asset_id: uint256,
    price: uint256,
    terms: uint8,
    max_copies: uint256,
    duration: uint256,
    transferable: bool,
) -> uint256:
    """
    @notice Offers licences to an asset the caller owns.
    @param asset_id The asset in the registry.
    @param price The price of one copy in the payment token; may be 0.
    @param terms One of the `TERMS_*` constants.
    @param max_copies The most copies ever sold; 0 for no cap.
    @param duration Seconds a licence lasts from purchase; 0 for ever.
    @param transferable Whether holders may pass licences on.
    @return uint256 The new offer id, which is also the token id.
    """
    assert staticcall AssetRegistry(registry).ownerOf(asset_id) == msg.sender, "cairn_licence: not the asset owner"
    assert terms >= TERMS_OPEN and terms <= TERMS_COMMERCIAL_REMIX, "cairn_licence: unknown terms"
    assert duration <= _MAX_DURATION, "cairn_licence: duration too long"
    assert len(self._asset_offers[asset_id]) < _MAX_OFFERS_PER_ASSET, "cairn_licence: too many offers"
    offer_id: uint256 = self.offer_count + 1
    self.offer_count = offer_id
    self._offers[offer_id] = Offer(
        asset_id=asset_id,
        price=price,
        terms=terms,
        max_copies=max_copies,
        duration=duration,
        transferable=transferable,
        active=True,
        sold=0,
    )
    self._asset_offers[asset_id].append(offer_id)
    log OfferCreated(
        offer_id=offer_id,
        asset_id=asset_id,
        seller=msg.sender,
        price=price,
        terms=terms,
        max_copies=max_copies,
        duration=duration,
        transferable=transferable,
    )
    return offer_id


@external
def set_offer_active(offer_id: uint256, active: bool):
    """
    @notice Withdraws an offer from sale, or offers it again. Licences
            already bought stay valid.
    @param offer_id The offer; the caller must own its asset now.
    @param active Whether the offer can be bought.
    """
    asset_id: uint256 = self._offer(offer_id).asset_id
    assert staticcall AssetRegistry(registry).ownerOf(asset_id) == msg.sender, "cairn_licence: not the asset owner"
    self._offers[offer_id].active = active
    log OfferActiveSet(offer_id=offer_id, active=active)


@external
def buy(offer_id: uint256, holder: address, copies: uint256) -> uint256:
    """
    @notice Buys `copies` licences of an offer for `holder`, paying
            `price * copies` from the caller to the treasury.
    @dev The caller must have approved this contract for the price.
         Tokens that deliver less than the price are refused. Effects
         come before the receiver hook.
    @param offer_id The offer.
    @param holder Who receives the licences; not the zero address.
    @param copies How many; at least 1.
    @return uint256 The holder's expiry for a time-limited offer, else 0.
    """
    item: Offer = self._offer(offer_id)
    assert item.active, "cairn_licence: offer not active"
    assert holder != empty(address), "cairn_licence: mint to the zero address"
    assert copies != 0, "cairn_licence: zero copies"
    sold: uint256 = item.sold + copies
    assert item.max_copies == 0 or sold <= item.max_copies, "cairn_licence: sold out"
    self._offers[offer_id].sold = sold
    self._balances[offer_id][holder] += copies
    expires: uint256 = 0
    if item.duration != 0:
        expires = max(self._expiry[offer_id][holder], block.timestamp) + item.duration
        self._expiry[offer_id][holder] = expires

    # The payment passes through this contract, so the treasury sees it
    # come from a Cairn contract and never mistakes it for a prepaid
    # deposit by the buyer.
    cost: uint256 = item.price * copies
    receiver: address = self.treasury
    if cost != 0:
        held: uint256 = staticcall IERC20(token).balanceOf(self)
        assert extcall IERC20(token).transferFrom(msg.sender, self, cost), "cairn_licence: payment failed"
        received: uint256 = staticcall IERC20(token).balanceOf(self) - held
        assert received == cost, "cairn_licence: received less than the price"
        assert extcall IERC20(token).transfer(receiver, cost), "cairn_licence: payment failed"

    log TransferSingle(operator=msg.sender, sender=empty(address), receiver=holder, id=offer_id, value=copies)
    log LicenceBought(
        offer_id=offer_id,
        asset_id=item.asset_id,
        buyer=msg.sender,
        holder=holder,
        copies=copies,
        paid=cost,
        treasury=receiver,
        expires=expires,
    )
    if holder.is_contract:
        answer: bytes4 = extcall IERC1155Receiver(holder).onERC1155Received(
            msg.sender, empty(address), offer_id, copies, b""
        )
        assert answer == _ERC1155_RECEIVED, "cairn_licence: receiver refused the licence"
    return expires


@external
@view
def get_offer(offer_id: uint256) -> Offer:
    """
    @notice An offer's terms and sales.
    @param offer_id The offer; must exist.
    @return Offer The offer.
    """
    return self._offer(offer_id)


@external
@view
def offers_of(asset_id: uint256) -> DynArray[uint256, _MAX_OFFERS_PER_ASSET]:
    """
    @notice The offers made for an asset, oldest first.
    @param asset_id The asset.
    @return DynArray The offer ids.
    """
    return self._asset_offers[asset_id]


@external
@view
def expires_at(offer_id: uint256, account: address) -> uint256:
    """
    @notice When `account`'s licence of a time-limited offer ends.
    @param offer_id The offer.
    @param account The holder.
    @return uint256 A timestamp; 0 for perpetual offers or non-holders.
    """
    return self._expiry[offer_id][account]


@external
@view
def has_licence(account: address, offer_id: uint256) -> bool:
    """
    @notice Whether `account` holds a valid licence of `offer_id`: at
            least one copy, not expired.
    @param account The holder.
    @param offer_id The offer.
    @return bool Whether the licence is valid now.
    """
    return self._valid(account, offer_id)


@external
@view
def licence_for(account: address, asset_id: uint256) -> uint256:
    """
    @notice A valid licence `account` holds for an asset.
    @param account The holder.
    @param asset_id The asset.
    @return uint256 The first such offer id, or 0 when there is none.
    """
    for offer_id: uint256 in self._asset_offers[asset_id]:
        if self._valid(account, offer_id):
            return offer_id
    return 0


@external
def set_treasury(new_treasury: address):
    """
    @notice Sends future licence payments to `new_treasury`.
    @param new_treasury The account that settles revenue; not zero.
    """
    assert msg.sender == self.owner, "cairn_licence: not the owner"
    assert new_treasury != empty(address), "cairn_licence: zero treasury"
    self.treasury = new_treasury
    log TreasurySet(treasury=new_treasury)


@external
def transfer_ownership(new_owner: address):
    """
    @notice Hands the right to name the treasury to `new_owner`.
    @param new_owner The new owner; not zero.
    """
    assert msg.sender == self.owner, "cairn_licence: not the owner"
    assert new_owner != empty(address), "cairn_licence: zero owner"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner


@internal
@view
def _offer(offer_id: uint256) -> Offer:
    assert offer_id != 0 and offer_id <= self.offer_count, "cairn_licence: no such offer"
    return self._offers[offer_id]


@internal
@view
def _valid(account: address, offer_id: uint256) -> bool:
    if self._balances[offer_id][account] == 0:
        return False
    if self._offers[offer_id].duration == 0:
        return True
    return self._expiry[offer_id][account] > block.timestamp


@internal
@view
def _check_transfer(sender: address, receiver: address):
    assert receiver != empty(address), "cairn_licence: transfer to the zero address"
    assert (
        sender == msg.sender or self.isApprovedForAll[sender][msg.sender]
    ), "cairn_licence: caller is not holder or approved for all"


@internal
def _move(sender: address, receiver: address, id: uint256, amount: uint256):
    item: Offer = self._offer(id)
    assert item.transferable, "cairn_licence: licence not transferable"
    held: uint256 = self._balances[id][sender]
    assert held >= amount, "cairn_licence: insufficient balance"
    # `held >= amount` was checked on the line above.
    self._balances[id][sender] = unsafe_sub(held, amount)
    self._balances[id][receiver] += amount
    if item.duration != 0:
        self._expiry[id][receiver] = max(self._expiry[id][receiver], self._expiry[id][sender])
