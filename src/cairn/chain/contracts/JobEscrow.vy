# pragma version ~=0.4.0
"""
@title Cairn job escrow
@custom:contract-name JobEscrow
@license Apache-2.0
@notice Holds the money of Cairn's compute network: the budget of each
        training job, paid in by its builder, and the stake of each
        compute provider. A coordinator (the node that runs the jobs)
        enlists providers in a job, which locks their stake until the
        job ends; at the end it settles the job with the Merkle root of
        the providers' completed work units, and each provider claims
        `budget * work / total_work` of the budget with its inclusion
        proof. After the job's deadline and a grace period the builder
        takes back what was not paid out. A coordinator may slash a
        provider's stake for a job; the slashed tokens go to the job's
        builder.
@dev This contract only composes its modules, one idea each, and
     exports their external functions:

     - `escrow_token`: the token, pulled in and paid out;
     - `escrow_owner`: the owner, the coordinators it names, and the
       minimum stake, unbonding and grace periods it sets;
     - `escrow_stakes`: providers' registration, stakes and withdrawal;
     - `escrow_jobs`: job budgets and their lifecycle (create, cancel,
       settle, reclaim);
     - `escrow_enlistment`: which providers take part in which job,
       locking their stakes;
     - `escrow_payouts`: providers' payouts with work proofs;
     - `escrow_slashing`: slashing a provider's stake for a job.

     The work reports behind a root are signed and anchored off this
     contract; their CID is published in the `JobSettled` event, as
     recipe and evidence CIDs are in theirs, and none of them is
     stored. Revert strings are prefixed `cairn_escrow:` in every
     module, as this contract is what callers see.
"""


from . import escrow_enlistment
from . import escrow_jobs
from . import escrow_owner
from . import escrow_payouts
from . import escrow_slashing
from . import escrow_stakes
from . import escrow_token


initializes: escrow_token
initializes: escrow_owner
initializes: escrow_stakes[escrow_owner := escrow_owner, escrow_token := escrow_token]
initializes: escrow_jobs[escrow_owner := escrow_owner, escrow_token := escrow_token]
initializes: escrow_enlistment[
    escrow_jobs := escrow_jobs,
    escrow_owner := escrow_owner,
    escrow_stakes := escrow_stakes,
]
initializes: escrow_payouts[
    escrow_enlistment := escrow_enlistment,
    escrow_jobs := escrow_jobs,
    escrow_token := escrow_token,
]
initializes: escrow_slashing[
    escrow_enlistment := escrow_enlistment,
    escrow_jobs := escrow_jobs,
    escrow_owner := escrow_owner,
    escrow_stakes := escrow_stakes,
    escrow_token := escrow_token,
]


exports: (
    escrow_token.__interface__,
    escrow_owner.__interface__,
    escrow_stakes.__interface__,
    escrow_jobs.__interface__,
    escrow_enlistment.__interface__,
    escrow_payouts.__interface__,
    escrow_slashing.__interface__,
)


@deploy
def __init__(token_: address, registry_: address):
    """
    @notice Deploys an escrow paying in `token_` for jobs on the models
            of `registry_`. The deployer becomes the owner and the first
            coordinator; the unbonding period starts at one day, the
            grace period at seven days, the minimum stake at zero.
    @param token_ The ERC-20 token.
    @param registry_ The `AssetRegistry`.
    """
    escrow_token.__init__(token_)
    escrow_jobs.__init__(registry_)
    escrow_owner.__init__()
