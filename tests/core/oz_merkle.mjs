// Runs OpenZeppelin's StandardMerkleTree (@openzeppelin/merkle-tree) for tests/core/test_merkle.py.
//
// stdin: one JSON request or a JSON list of them; stdout: one JSON answer, or a list in the
// same order. An answer is {"error": message} when the library throws.
//   {"op": "of", "values": [...], "encoding": [...], "sortLeaves": true}
//       -> {"root", "proofs": [proof of value i], "dump", "multiProof" (of all values),
//           "render", "lookups": [leafLookup(value i)]}
//   {"op": "load", "dump": {...}}                -> {"root", "proofs"}
//   {"op": "verify", "root", "encoding", "value", "proof"}          -> {"ok": bool}
//   {"op": "verifyMultiProof", "root", "encoding", "multiProof"}     -> {"ok": bool}
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

function answer(request) {
  try {
    switch (request.op) {
      case "of": {
        const tree = StandardMerkleTree.of(request.values, request.encoding, {
          sortLeaves: request.sortLeaves ?? true,
        });
        return {
          root: tree.root,
          proofs: request.values.map((_, i) => tree.getProof(i)),
          dump: tree.dump(),
          multiProof: tree.getMultiProof(request.values.map((_, i) => i)),
          render: tree.render(),
          lookups: request.values.map((value) => tree.leafLookup(value)),
        };
      }
      case "load": {
        const tree = StandardMerkleTree.load(request.dump);
        return { root: tree.root, proofs: tree.dump().values.map((_, i) => tree.getProof(i)) };
      }
      case "verify":
        return {
          ok: StandardMerkleTree.verify(request.root, request.encoding, request.value, request.proof),
        };
      case "verifyMultiProof":
        return {
          ok: StandardMerkleTree.verifyMultiProof(request.root, request.encoding, request.multiProof),
        };
      default:
        return { error: `unknown op ${JSON.stringify(request.op)}` };
    }
  } catch (error) {
    return { error: String(error && error.message ? error.message : error) };
  }
}

const input = JSON.parse(readFileSync(0, "utf8"));
const output = Array.isArray(input) ? input.map(answer) : answer(input);
process.stdout.write(JSON.stringify(output));
