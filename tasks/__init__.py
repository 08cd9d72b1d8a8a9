"""Task suites: loading, prompt format and verifier, one module per suite (see DESIGN.md, "Tasks")."""
