//! The registry client: pull and push against any registry that follows the OCI distribution spec.
