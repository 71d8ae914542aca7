"""Runtime adapters; see base.py for the contract and the registry."""
