//! `berth registry serve`: an OCI distribution registry.
