"""IPVS mode of the node proxy: planner, kernel shell and backend (see backend.py)."""
