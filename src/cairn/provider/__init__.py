"""The provider: `cairn worker`, the program a compute provider runs on its own machine.

It stakes in JobEscrow and runs a Flower SuperNode for a node (`worker`), whose ClientApp
trains each round (`clientapp`) on what it fetches by CID (`blobs`). It talks to a node only
through the node's public HTTP API (`node_api`), never through the node's own modules.
"""
