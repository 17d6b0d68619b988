"""Operations tools run from a pipeline or a laptop, not by either process (deployment markers, boards)."""
