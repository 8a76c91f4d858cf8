"""Evidence integrity: the Merkle log, proofs, verification, the server key, full-process recording."""
