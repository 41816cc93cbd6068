"""Verification without trusting the operator: screens, replays and evidence.

- `screens`: cheap checks of one round's updates (no length, copied, stale, scaled, flipped);
- `sampling`: which worker-rounds a job replays, drawn after its reports are in, the same for
  every validator;
- `replay`: a worker-round trained again from the inputs its report signs, its weights compared
  with the returned ones, and the evidence of a mismatch.
"""
