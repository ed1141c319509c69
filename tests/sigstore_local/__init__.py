"""Offline Sigstore services (node @sigstore/mock) and the sigstore-js CLI for tests."""
