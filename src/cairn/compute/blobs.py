"""How a job's workers prove they may read its blobs: the job's token, in this header.

The node's blob route admits a request bearing it to what the job needs (`cairn.assets.content`);
a provider's `BlobCache` (`cairn.provider.blobs`) sends it.
"""

JOB_TOKEN_HEADER = "X-Cairn-Job-Token"
