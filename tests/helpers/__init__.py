"""Test helpers for flb-sigv4: chunk builders, a SigV4-verifying receiver, the C host runner."""
