"""Sequence releases: alphabets, FASTA files, a public-bounded feature view and sequence-aware audits."""
