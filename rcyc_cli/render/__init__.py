"""Everything rcyc shows a person: rich tables, score bars and progress (stderr). No library code here."""
