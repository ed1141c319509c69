"""Verified loading for ML frameworks: each module imports its framework only when used."""
