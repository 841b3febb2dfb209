"""Statistics over finished runs: forgetting (drops and their intervals), retention of the baseline's answers,
collapse diagnostics and the tables' number formatting. Imports only ``core``."""
